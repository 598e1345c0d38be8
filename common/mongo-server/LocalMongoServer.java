import de.bwaldvogel.mongo.MongoServer;
import de.bwaldvogel.mongo.ServerVersion;
import de.bwaldvogel.mongo.backend.memory.MemoryBackend;

/**
 * A MongoDB wire-compatible server for tests: mongo-java-server with its in-memory backend, in its
 * newest mode (MONGO_5_0, which reports wire version 8: the Node.js driver 6.x accepts it, 7.x asks
 * for 9). Run as a single source file, nothing to compile beforehand:
 *
 *   java -cp '<lib>/*' LocalMongoServer.java <port> [host]
 *
 * Prints `listening on <host>:<port>` once it accepts connections. It stops when its standard input
 * closes (the process that started it is gone) or on SIGTERM. No transactions, no TTL monitor, no
 * change streams: data lives as long as the process.
 */
public final class LocalMongoServer {
  public static void main(String[] args) throws Exception {
    if (args.length < 1) {
      System.err.println("usage: java -cp '<lib>/*' LocalMongoServer.java <port> [host]");
      System.exit(64);
    }
    int port = Integer.parseInt(args[0]);
    String host = args.length > 1 ? args[1] : "127.0.0.1";
    MongoServer server = new MongoServer(new MemoryBackend().version(ServerVersion.MONGO_5_0));
    server.bind(host, port);
    Runtime.getRuntime().addShutdownHook(new Thread(server::shutdownNow));
    System.out.println("listening on " + host + ":" + port);
    System.out.flush();
    // The parent holds our standard input open; when it goes (even killed), so do we.
    while (System.in.read() != -1) {
      // Input is ignored.
    }
    System.exit(0);
  }
}
