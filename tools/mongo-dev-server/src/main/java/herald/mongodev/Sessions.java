package herald.mongodev;

import de.bwaldvogel.mongo.bson.Document;

/**
 * Advertises logical sessions in the handshake reply.
 *
 * Drivers attach a session id to commands only when the server's hello/isMaster reply carries
 * {@code logicalSessionTimeoutMinutes}; without it PyMongo refuses {@code start_session()},
 * which APScheduler's MongoDB data store calls for every operation (bench/peers). The library
 * ignores the {@code lsid} field that commands then carry, so nothing else changes.
 */
final class Sessions {

    static final int TIMEOUT_MINUTES = 30;

    private Sessions() {
    }

    static Document advertise(String command, Document reply) {
        if (reply != null && (command.equalsIgnoreCase("ismaster") || command.equalsIgnoreCase("hello"))) {
            reply.putIfAbsent("logicalSessionTimeoutMinutes", TIMEOUT_MINUTES);
        }
        return reply;
    }
}
