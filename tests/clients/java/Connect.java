// Connect.java - pgjdbc (Debian's libpostgresql-jdbc-java) with default
// options: connect, SELECT 1, SELECT 1 inside a transaction, and what
// connection pools (HikariCP) and frameworks (Spring's @Transactional) do
// to a connection: isolation levels and read-only transactions, the schema,
// isValid, a network timeout, a server-side prepared statement (pgjdbc
// switches after 5 executions) and a query timeout that cancels pg_sleep.
//
//   java -cp /usr/share/java/postgresql.jar Connect.java HOST PORT USER PASSWORD DBNAME
//
// Runs against a real PostgreSQL 15 (scripts/capture-introspection) and
// against `pgfault serve` (tests/e2e/orm_java.sh), which requires the same
// output from both. The password is never printed.
import java.sql.Connection;
import java.sql.DriverManager;
import java.sql.PreparedStatement;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.sql.Statement;
import java.util.Properties;

public class Connect {
    static void expectOne(Statement st, String what) throws Exception {
        try (ResultSet rs = st.executeQuery("SELECT 1")) {
            if (!rs.next() || rs.getInt(1) != 1)
                throw new IllegalStateException(what + ": SELECT 1 did not return 1");
        }
        System.out.println("ok pgjdbc " + what);
    }

    public static void main(String[] a) throws Exception {
        String url = "jdbc:postgresql://" + a[0] + ":" + a[1] + "/" + a[4];
        Properties p = new Properties();
        p.setProperty("user", a[2]);
        p.setProperty("password", a[3]);
        try (Connection c = DriverManager.getConnection(url, p)) {
            try (Statement st = c.createStatement()) {
                expectOne(st, "select1");
            }
            c.setAutoCommit(false);
            try (Statement st = c.createStatement()) {
                expectOne(st, "transaction");
            }
            c.commit();
            System.out.println("ok pgjdbc metadata " + c.getMetaData().getDatabaseProductVersion().split(" ")[0]);
            pools(c);
        }
    }

    static String show(Connection c, String what) throws Exception {
        try (Statement st = c.createStatement(); ResultSet rs = st.executeQuery("SHOW " + what)) {
            rs.next();
            return rs.getString(1);
        }
    }

    static void pools(Connection c) throws Exception {
        c.setAutoCommit(true);
        System.out.println("ok pgjdbc isolation default " + c.getTransactionIsolation());
        int[] levels = {Connection.TRANSACTION_SERIALIZABLE, Connection.TRANSACTION_REPEATABLE_READ,
                        Connection.TRANSACTION_READ_UNCOMMITTED, Connection.TRANSACTION_READ_COMMITTED};
        for (int level : levels) {
            c.setTransactionIsolation(level);
            System.out.println("ok pgjdbc isolation " + level + " -> " + c.getTransactionIsolation()
                               + " (" + show(c, "transaction_isolation") + ")");
        }
        c.setTransactionIsolation(Connection.TRANSACTION_SERIALIZABLE);
        c.setAutoCommit(false);
        c.setReadOnly(true);
        System.out.println("ok pgjdbc read-only transaction: " + show(c, "transaction_read_only") + ", "
                           + show(c, "transaction_isolation"));
        c.commit();
        c.setReadOnly(false);
        System.out.println("ok pgjdbc read-write transaction: " + show(c, "transaction_read_only"));
        c.rollback();
        c.setAutoCommit(true);
        c.setTransactionIsolation(Connection.TRANSACTION_READ_COMMITTED);
        System.out.println("ok pgjdbc schema " + c.getSchema() + ", valid " + c.isValid(2));
        c.setNetworkTimeout(Runnable::run, 5000);
        System.out.println("ok pgjdbc network timeout " + c.getNetworkTimeout());
        try (PreparedStatement ps = c.prepareStatement("SELECT ?::int AS answer")) {
            StringBuilder got = new StringBuilder();
            for (int i = 1; i <= 7; i++) {
                ps.setInt(1, i);
                try (ResultSet rs = ps.executeQuery()) {
                    rs.next();
                    got.append(rs.getInt(1));
                }
            }
            System.out.println("ok pgjdbc prepared x7 " + got);
        }
        try (Statement st = c.createStatement()) {
            st.setQueryTimeout(1);
            st.execute("SELECT pg_sleep(30)");
            System.out.println("no pgjdbc query timeout: pg_sleep(30) returned");
        } catch (SQLException e) {
            System.out.println("ok pgjdbc query timeout " + e.getSQLState() + " " + e.getMessage());
        }
        try (Statement st = c.createStatement()) {
            expectOne(st, "after cancel");
        }
    }
}
