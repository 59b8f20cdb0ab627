// pgfclients - Go's two PostgreSQL drivers from Debian (pgx v4 with its
// pool, and lib/pq through database/sql) against one server: connect,
// SELECT 1, a parameter, a serializable read-only transaction, a ping, a
// context deadline that cancels pg_sleep, and what the connection does
// next.
//
//	pgfclients HOST PORT USER PASSWORD DBNAME
//
// Built in GOPATH mode against /usr/share/gocode (golang-go,
// golang-github-jackc-pgx-v4-dev, golang-github-lib-pq-dev) and run against
// a real PostgreSQL 15 and `pgfault serve` by tests/e2e/orm_go.sh, which
// requires the same output from both. The password is never printed.
package main

import (
	"context"
	"database/sql"
	"fmt"
	"net"
	"net/url"
	"os"
	"time"

	"github.com/jackc/pgx/v4"
	"github.com/jackc/pgx/v4/pgxpool"
	_ "github.com/lib/pq"
)

func check(what string, err error, got ...interface{}) {
	if err != nil {
		fmt.Printf("FAIL %s: %v\n", what, err)
		os.Exit(1)
	}
	fmt.Println(append([]interface{}{"ok", what}, got...)...)
}

func main() {
	if len(os.Args) != 6 {
		fmt.Fprintln(os.Stderr, "usage: pgfclients HOST PORT USER PASSWORD DBNAME")
		os.Exit(2)
	}
	u := url.URL{Scheme: "postgres", User: url.UserPassword(os.Args[3], os.Args[4]),
		Host: net.JoinHostPort(os.Args[1], os.Args[2]), Path: "/" + os.Args[5],
		RawQuery: "sslmode=disable"}
	dsn := u.String()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	c, err := pgx.Connect(ctx, dsn)
	check("pgx connect", err)
	var one int
	var n int64
	var s string
	check("pgx select1", c.QueryRow(ctx, "SELECT 1").Scan(&one), one)
	check("pgx param", c.QueryRow(ctx, "SELECT $1::int", 42).Scan(&n), n)
	check("pgx version", c.QueryRow(ctx, "SELECT version()").Scan(&s))
	tx, err := c.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.Serializable, AccessMode: pgx.ReadOnly})
	check("pgx begin serializable read only", err)
	check("pgx isolation", tx.QueryRow(ctx, "SHOW transaction_isolation").Scan(&s), s)
	check("pgx read only", tx.QueryRow(ctx, "SHOW transaction_read_only").Scan(&s), s)
	check("pgx commit", tx.Commit(ctx))
	check("pgx ping", c.Ping(ctx))
	short, stop := context.WithTimeout(ctx, 300*time.Millisecond)
	_, err = c.Exec(short, "SELECT pg_sleep(10)")
	stop()
	fmt.Println("ok pgx deadline on pg_sleep:", err != nil)
	err = c.QueryRow(ctx, "SELECT 1").Scan(&one)
	fmt.Println("ok pgx after the deadline:", err)
	c.Close(ctx)

	p, err := pgxpool.Connect(ctx, dsn)
	check("pgxpool connect", err)
	check("pgxpool select1", p.QueryRow(ctx, "SELECT 1").Scan(&one), one)
	p.Close()

	db, err := sql.Open("postgres", dsn)
	check("lib/pq open", err)
	defer db.Close()
	check("lib/pq ping", db.PingContext(ctx))
	check("lib/pq select1", db.QueryRowContext(ctx, "SELECT 1").Scan(&one), one)
	check("lib/pq param", db.QueryRowContext(ctx, "SELECT $1::int", 7).Scan(&n), n)
	stx, err := db.BeginTx(ctx, &sql.TxOptions{Isolation: sql.LevelRepeatableRead, ReadOnly: true})
	check("lib/pq begin repeatable read", err)
	check("lib/pq isolation", stx.QueryRowContext(ctx, "SHOW transaction_isolation").Scan(&s), s)
	check("lib/pq commit", stx.Commit())
	short, stop = context.WithTimeout(ctx, 300*time.Millisecond)
	_, err = db.ExecContext(short, "SELECT pg_sleep(10)")
	stop()
	fmt.Println("ok lib/pq deadline on pg_sleep:", err)
	check("lib/pq after the deadline", db.QueryRowContext(ctx, "SELECT 1").Scan(&one), one)
}
