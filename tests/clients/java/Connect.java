// Connect.java - pgjdbc (Debian's libpostgresql-jdbc-java) with default
// options: connect, SELECT 1, and SELECT 1 inside a transaction.
//
//   java -cp /usr/share/java/postgresql.jar Connect.java HOST PORT USER PASSWORD DBNAME
//
// Runs against a real PostgreSQL 15 (scripts/capture-introspection) and
// against `pgfault serve` (tests/e2e/orm_java.sh). The password is never printed.
import java.sql.Connection;
import java.sql.DriverManager;
import java.sql.ResultSet;
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
        }
    }
}
