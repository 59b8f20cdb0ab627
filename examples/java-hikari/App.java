// App.java - a health endpoint on a HikariCP pool over pgjdbc, configured
// from POSTGRES_* (pgfault passes the fake server's coordinates and a free
// PORT). GET /healthz borrows a connection, runs SELECT 1 and gives it back.
//
//   java -cp HikariCP.jar:postgresql.jar:slf4j-api.jar:slf4j-nop.jar App.java
//
// CLOSE_STYLE picks how the connection is given back:
//   try      try-with-resources: closed (returned to the pool) on every path.
//   leak     the bug, as written before Java 7 and still found in services:
//            close() is the last line of the happy path, so a query that
//            throws never gives its connection back. Harmless while the
//            database behaves; after as many failures as the pool has
//            connections, every request waits connectionTimeout for a
//            connection that never comes back, and the service stays red.
//
// The password is never printed. Hikari logs through SLF4J; slf4j-nop keeps
// its warnings (each with a stack trace of the broken connection) out of
// the output that pgfault scans for traces.
import com.sun.net.httpserver.HttpExchange;
import com.sun.net.httpserver.HttpServer;
import com.zaxxer.hikari.HikariConfig;
import com.zaxxer.hikari.HikariDataSource;
import java.io.OutputStream;
import java.net.InetSocketAddress;
import java.nio.charset.StandardCharsets;
import java.sql.Connection;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.sql.SQLTransientConnectionException;
import java.sql.Statement;
import java.util.concurrent.Executors;

public class App {
    static final String STYLE = System.getenv().getOrDefault("CLOSE_STYLE", "try");
    static final int TIMEOUT_MS = Integer.parseInt(System.getenv().getOrDefault("HEALTH_TIMEOUT_MS", "1000"));
    static HikariDataSource pool;

    static String env(String name) {
        String v = System.getenv(name);
        if (v == null || v.isEmpty())
            throw new IllegalStateException(name + " is not set");
        return v;
    }

    // What kind of unhealthy, in pgfault's words for health reasons
    // (docs/targets.md): pgfault counts each, and a word it does not know
    // as server_error.
    static String reason(SQLException e) {
        String state = e.getSQLState() == null ? "" : e.getSQLState();
        if (e instanceof SQLTransientConnectionException)
            return "timeout"; // no connection within connectionTimeout
        switch (state) {
        case "28P01":
            return "auth_failed";
        case "57014":
            return "canceled";
        case "53300":
            return "too_many_connections";
        case "57P01":
        case "57P02":
        case "57P03":
            return "shutting_down";
        case "08P01":
            return "protocol_error";
        default:
            return state.startsWith("08") ? "connection_lost" : "server_error";
        }
    }

    static void check() throws SQLException {
        if (STYLE.equals("leak")) {
            Connection c = pool.getConnection();
            Statement st = c.createStatement();
            ResultSet rs = st.executeQuery("SELECT 1"); // throws: c is never closed
            rs.next();
            rs.close();
            st.close();
            c.close();
            return;
        }
        try (Connection c = pool.getConnection();
             Statement st = c.createStatement();
             ResultSet rs = st.executeQuery("SELECT 1")) {
            rs.next();
        }
    }

    static void reply(HttpExchange ex, int status, String body) throws java.io.IOException {
        byte[] b = body.getBytes(StandardCharsets.UTF_8);
        ex.getResponseHeaders().set("Content-Type", "application/json");
        ex.sendResponseHeaders(status, b.length);
        try (OutputStream os = ex.getResponseBody()) {
            os.write(b);
        }
    }

    static void healthz(HttpExchange ex) throws java.io.IOException {
        if (!ex.getRequestMethod().equals("GET") || !ex.getRequestURI().getPath().equals("/healthz")) {
            reply(ex, 404, "{\"error\":\"not found\"}");
            return;
        }
        try {
            check();
            reply(ex, 200, "{\"status\":\"ok\"}");
        } catch (SQLException e) {
            reply(ex, 503, "{\"status\":\"unhealthy\",\"reason\":\"" + reason(e) + "\"}");
        }
    }

    public static void main(String[] args) throws Exception {
        HikariConfig cfg = new HikariConfig();
        cfg.setJdbcUrl("jdbc:postgresql://" + env("POSTGRES_HOST") + ":" + env("POSTGRES_PORT") + "/"
                       + env("POSTGRES_DB"));
        cfg.setUsername(env("POSTGRES_USER"));
        cfg.setPassword(env("POSTGRES_PASSWORD"));
        cfg.setMaximumPoolSize(2); // also the idle floor: Hikari keeps its connections open
        cfg.setMinimumIdle(2);
        cfg.setConnectionTimeout(TIMEOUT_MS);
        cfg.setValidationTimeout(Math.max(250, TIMEOUT_MS / 2));
        cfg.setInitializationFailTimeout(-1); // start even if the database is down
        cfg.setTransactionIsolation("TRANSACTION_READ_COMMITTED");
        cfg.addDataSourceProperty("socketTimeout", String.valueOf(Math.max(1, TIMEOUT_MS / 1000)));
        cfg.addDataSourceProperty("ApplicationName", "java-hikari-" + STYLE);
        pool = new HikariDataSource(cfg);

        int port = Integer.parseInt(env("PORT"));
        HttpServer server = HttpServer.create(new InetSocketAddress("127.0.0.1", port), 64);
        server.createContext("/", ex -> {
            try {
                healthz(ex);
            } finally {
                ex.close();
            }
        });
        server.setExecutor(Executors.newFixedThreadPool(4));
        Runtime.getRuntime().addShutdownHook(new Thread(() -> {
            server.stop(0);
            pool.close();
        }));
        server.start();
        System.out.println("listening on 127.0.0.1:" + port + " (CLOSE_STYLE=" + STYLE + ")");
    }
}
