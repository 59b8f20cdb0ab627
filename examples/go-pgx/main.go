// main.go - a health endpoint on a pgx v4 pool (Debian's
// golang-github-jackc-pgx-v4-dev), configured from POSTGRES_* (pgfault
// passes the fake server's coordinates and a free PORT). GET /healthz
// runs SELECT 1 on a pooled connection.
//
//	GOPATH=/usr/share/gocode GO111MODULE=off go run main.go
//
// DEADLINE_STYLE picks the context the query runs under:
//
//	request  the request's context with a 1 s timeout: a query that gets no
//	         answer is abandoned (pgx closes that connection) and the
//	         request answers 503 "timeout" in time.
//	none     the bug: context.Background(), as in a handler written before
//	         anyone thought of timeouts. Harmless while the database
//	         answers; a connection that stops answering (a stalled socket, a
//	         half-open TCP connection) holds its request and its pooled
//	         connection forever, and once the pool's connections are all
//	         held, every request waits.
//
// The password is never printed.
package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"time"

	"github.com/jackc/pgconn"
	"github.com/jackc/pgx/v4/pgxpool"
)

func env(name string) string {
	v := os.Getenv(name)
	if v == "" {
		fmt.Fprintf(os.Stderr, "%s is not set\n", name)
		os.Exit(2)
	}
	return v
}

// reason: pgfault's word for what went wrong (docs/targets.md).
func reason(err error) string {
	var pgErr *pgconn.PgError
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		return "timeout"
	case errors.As(err, &pgErr) && pgErr.Code == "28P01":
		return "auth_failed"
	case errors.As(err, &pgErr) && pgErr.Code == "57014":
		return "canceled"
	case errors.As(err, &pgErr):
		return "server_error"
	default:
		return "connection_lost"
	}
}

func main() {
	style := os.Getenv("DEADLINE_STYLE")
	if style == "" {
		style = "request"
	}
	timeout := time.Second
	if ms, err := strconv.Atoi(os.Getenv("HEALTH_TIMEOUT_MS")); err == nil && ms > 0 {
		timeout = time.Duration(ms) * time.Millisecond
	}
	u := url.URL{Scheme: "postgres", User: url.UserPassword(env("POSTGRES_USER"), env("POSTGRES_PASSWORD")),
		Host: net.JoinHostPort(env("POSTGRES_HOST"), env("POSTGRES_PORT")), Path: "/" + env("POSTGRES_DB")}
	q := u.Query()
	q.Set("sslmode", "disable")
	q.Set("pool_max_conns", "2")
	q.Set("application_name", "go-pgx-"+style)
	q.Set("connect_timeout", "1")
	u.RawQuery = q.Encode()
	pool, err := pgxpool.Connect(context.Background(), u.String())
	if err != nil {
		fmt.Fprintln(os.Stderr, "pool:", err)
		os.Exit(1)
	}
	defer pool.Close()

	http.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) {
		ctx := context.Background()
		if style == "request" {
			var cancel context.CancelFunc
			ctx, cancel = context.WithTimeout(r.Context(), timeout)
			defer cancel()
		}
		var one int
		w.Header().Set("Content-Type", "application/json")
		if err := pool.QueryRow(ctx, "SELECT 1").Scan(&one); err != nil {
			w.WriteHeader(http.StatusServiceUnavailable)
			fmt.Fprintf(w, `{"status":"unhealthy","reason":%q}`, reason(err))
			return
		}
		fmt.Fprint(w, `{"status":"ok"}`)
	})
	addr := "127.0.0.1:" + env("PORT")
	fmt.Printf("listening on %s (DEADLINE_STYLE=%s)\n", addr, style)
	if err := http.ListenAndServe(addr, nil); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
