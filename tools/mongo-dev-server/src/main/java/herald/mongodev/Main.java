package herald.mongodev;

import java.util.Set;

import de.bwaldvogel.mongo.MongoBackend;
import de.bwaldvogel.mongo.MongoServer;

/**
 * Herald's MongoDB dev server: mongo-java-server reporting MongoDB 4.4, answering queries
 * from its indexes, secondary ones included ({@link QueryPlanner}).
 *
 * Prints {@code ready port=N backend=B} on stdout once listening (N is the bound port, so
 * {@code --port 0} picks a free one). SIGTERM shuts down cleanly, committing and closing the
 * H2 store.
 */
public final class Main {

    private static final String USAGE =
        "usage: mongo-dev-server [--port N] [--bind HOST] [--backend memory|h2] [--data FILE]"
            + " [--updates herald|library] [--inserts herald|library]";
    private static final Set<String> FLAGS = Set.of("--port", "--bind", "--backend", "--data", "--updates",
        "--inserts");

    /**
     * {@code --updates library}, {@code --inserts library}: every update, every insert the
     * library's own way, for tests that compare the two paths.
     */
    record Options(int port, String bind, String backend, String data, boolean libraryUpdates,
                   boolean libraryInserts) {

        static Options parse(String[] args) {
            int port = 27017;
            String bind = "127.0.0.1";
            String backend = "memory";
            String data = null;
            String updates = "herald";
            String inserts = "herald";
            for (int i = 0; i < args.length; i += 2) {
                String flag = args[i];
                if (!FLAGS.contains(flag)) {
                    throw new IllegalArgumentException("unknown argument: " + flag);
                }
                if (i + 1 == args.length) {
                    throw new IllegalArgumentException("missing value for " + flag);
                }
                String value = args[i + 1];
                switch (flag) {
                    case "--port" -> port = parsePort(value);
                    case "--bind" -> bind = value;
                    case "--backend" -> backend = value;
                    case "--updates" -> updates = value;
                    case "--inserts" -> inserts = value;
                    default -> data = value;
                }
            }
            if (!backend.equals("memory") && !backend.equals("h2")) {
                throw new IllegalArgumentException("--backend must be memory or h2, got: " + backend);
            }
            if (backend.equals("h2") && data == null) {
                throw new IllegalArgumentException("--backend h2 needs --data FILE");
            }
            if (backend.equals("memory") && data != null) {
                throw new IllegalArgumentException("--data is only valid with --backend h2");
            }
            return new Options(port, bind, backend, data, library("--updates", updates), library("--inserts", inserts));
        }

        private static boolean library(String flag, String value) {
            if (!value.equals("herald") && !value.equals("library")) {
                throw new IllegalArgumentException(flag + " must be herald or library, got: " + value);
            }
            return value.equals("library");
        }

        private static int parsePort(String value) {
            try {
                int port = Integer.parseInt(value);
                if (port >= 0 && port <= 65535) {
                    return port;
                }
            } catch (NumberFormatException ignored) {
                // reported below
            }
            throw new IllegalArgumentException("--port must be 0-65535, got: " + value);
        }
    }

    public static void main(String[] args) {
        Options options;
        try {
            options = Options.parse(args);
        } catch (IllegalArgumentException e) {
            System.err.println("mongo-dev-server: " + e.getMessage() + " (" + USAGE + ")");
            System.exit(2);
            return;
        }

        MongoServer server;
        try {
            server = start(options);
        } catch (Exception e) { // netty rethrows a checked BindException undeclared
            System.err.println("mongo-dev-server: cannot start: " + e);
            System.exit(1);
            return;
        }
        System.out.println("ready port=" + server.getLocalAddress().getPort() + " backend=" + options.backend());
        System.out.flush();
    }

    private static MongoServer start(Options options) {
        OperatorUpdates.useLibrary(options.libraryUpdates());
        Inserts.useLibrary(options.libraryInserts());
        MongoBackend backend = options.backend().equals("h2")
            ? new IndexedH2Backend(options.data())
            : new IndexedMemoryBackend();
        MongoServer server = new MongoServer(backend.version(Mongo44.INSTANCE));
        // Registered before binding so that any exit from here on closes the H2 store.
        Runtime.getRuntime().addShutdownHook(new Thread(server::shutdownNow, "mongo-dev-server-shutdown"));
        server.bind(options.bind(), options.port());
        return server;
    }
}
