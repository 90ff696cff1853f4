// A Java caller of the Kotlin bindings, compiled with javac against the compiled Kotlin jar,
// kotlin-stdlib and JNA, and run by .ci/test-kotlin: every call below must be reachable from
// Java under its plain name (no mangled names from unsigned value classes), with every argument
// given (Java has no default arguments). Ends with "N passed, M failed".

import com.sun.net.httpserver.HttpServer;
import dev.tidings.DeliveryEngine;
import dev.tidings.DeliveryOptions;
import dev.tidings.DeliveryRecord;
import dev.tidings.DeliveryState;
import dev.tidings.Endpoint;
import dev.tidings.EndpointOptions;
import dev.tidings.Event;
import dev.tidings.ExpectedVersion;
import dev.tidings.SqlValue;
import dev.tidings.Store;
import dev.tidings.StoreOptions;
import dev.tidings.TidingsException;
import dev.tidings.Transactions;
import dev.tidings.Tidings_uniffiKt;
import dev.tidings.Verified;
import java.io.File;
import java.net.InetSocketAddress;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.Map;

public final class JavaCallerTest {
    private static File dir;

    /** A store on a fresh file, loopback allowed (all eleven options given: Java has no defaults). */
    private static Store openStore() throws Exception {
        StoreOptions options = new StoreOptions(
            "java-test", null, true, List.of(), 5.0, 1_048_576L, 86_400.0, 67_108_864L, 0.1, 4L, List.of());
        return new Store(new File(dir, "java-" + System.nanoTime() + ".db").getPath(), options);
    }

    private static void check(boolean condition, String what) {
        if (!condition) throw new AssertionError(what);
    }

    private static void checkEq(Object actual, Object expected, String what) {
        check(java.util.Objects.equals(actual, expected), what + ": expected <" + expected + ">, got <" + actual + ">");
    }

    static void appendAndRead() throws Exception {
        try (Store store = openStore()) {
            Event first = store.append("order-1", "order.created", "{\"total\": 9.99}", ExpectedVersion.NoStream.INSTANCE, null, null, null);
            checkEq(first.getVersion(), 1L, "first version");
            store.append("order-1", "order.paid", "{}", new ExpectedVersion.Exact(1L), "{\"by\": \"java\"}", null, null);
            try {
                store.append("order-1", "order.created", "{}", ExpectedVersion.NoStream.INSTANCE, null, null, null);
                throw new AssertionError("a concurrency conflict was expected");
            } catch (TidingsException.Concurrency e) {
                checkEq(e.getActual(), 2L, "the actual version in the conflict");
            }
            List<Event> stream = store.readStream("order-1", null, null, false);
            checkEq(stream.size(), 2, "events in the stream");
            List<Event> all = store.readAll(2L, 10L, List.of("order.*"), null, null, null, false);
            checkEq(all.size(), 1, "events from position 2 (inclusive)");
            checkEq(all.get(0).getEventType(), "order.paid", "the event at position 2");
            checkEq(store.streamVersion("order-1"), 2L, "stream version");
            checkEq(store.lastPosition(), 2L, "last position");
            store.setCheckpoint("projector", 2L);
            checkEq(store.checkpoint("projector"), 2L, "checkpoint");
        }
    }

    static void transactionBlockFromJava() throws Exception {
        try (Store store = openStore()) {
            store.execute("CREATE TABLE orders (id INTEGER PRIMARY KEY)", List.of());
            Event event = Transactions.transaction(store, tx -> {
                try {
                    tx.execute("INSERT INTO orders (id) VALUES (?)", List.of(new SqlValue.Integer(7L)));
                    return tx.append("order-7", "order.created", "{}", null, null, null, null);
                } catch (TidingsException e) {
                    throw new RuntimeException(e);
                }
            });
            checkEq(event.getStream(), "order-7", "the block's value");
            List<List<SqlValue>> rows = store.query("SELECT count(*) FROM orders", List.of());
            checkEq(((SqlValue.Integer) rows.get(0).get(0)).getValue(), 1L, "the row committed");
        }
    }

    static void endpointsAndDelivery() throws Exception {
        List<byte[]> bodies = Collections.synchronizedList(new ArrayList<>());
        List<Verified> verified = Collections.synchronizedList(new ArrayList<>());
        List<String> secret = new ArrayList<>();
        HttpServer server = HttpServer.create(new InetSocketAddress("127.0.0.1", 0), 0);
        server.createContext("/hook", exchange -> {
            byte[] body = exchange.getRequestBody().readAllBytes();
            bodies.add(body);
            try {
                verified.add(Tidings_uniffiKt.verify(body, exchange.getRequestHeaders(), secret, 300.0));
            } catch (TidingsException e) {
                System.out.println("did not verify: " + e.getMessage());
            }
            exchange.sendResponseHeaders(204, -1);
            exchange.close();
        });
        server.start();
        String url = "http://127.0.0.1:" + server.getAddress().getPort() + "/hook";
        try (Store store = openStore()) {
            Endpoint endpoint = store.createEndpoint(url, new EndpointOptions());
            secret.add(endpoint.getSecret());
            List<Endpoint> listed = store.listEndpoints(null);
            checkEq(listed.size(), 1, "endpoints listed");
            checkEq(listed.get(0).getId(), endpoint.getId(), "the listed endpoint");
            for (int i = 0; i < 3; i++) {
                store.append("s", "thing.happened", "{\"i\": " + i + "}", null, null, null, null);
            }
            try (DeliveryEngine engine = store.startDelivery(new DeliveryOptions())) {
                check(engine.waitIdle(10.0), "the engine went idle within 10 s");
                engine.shutdown(5.0);
            }
            checkEq(bodies.size(), 3, "requests received");
            checkEq(verified.size(), 3, "requests that verified");
            List<DeliveryRecord> succeeded = store.deliveries(endpoint.getId(), DeliveryState.SUCCEEDED, null, null, 100L);
            checkEq(succeeded.size(), 3, "succeeded deliveries");
            List<DeliveryRecord> page = store.deliveries(null, null, null, succeeded.get(0).getId(), 100L);
            checkEq(page.size(), 2, "the page before the newest delivery (beforeId)");
            String payload = new String(bodies.get(0), StandardCharsets.UTF_8);
            check(payload.contains("thing.happened"), "the body names the event type: " + payload);
        } finally {
            server.stop(0);
        }
    }

    interface Test {
        void run() throws Exception;
    }

    public static void main(String[] args) throws Exception {
        dir = Files.createTempDirectory("tidings-java").toFile();
        Map<String, Test> tests = new java.util.LinkedHashMap<>();
        tests.put("append and read from Java", JavaCallerTest::appendAndRead);
        tests.put("transaction block from Java", JavaCallerTest::transactionBlockFromJava);
        tests.put("endpoints and delivery from Java", JavaCallerTest::endpointsAndDelivery);
        int passed = 0;
        int failed = 0;
        for (Map.Entry<String, Test> test : tests.entrySet()) {
            try {
                test.getValue().run();
                passed++;
                System.out.println("ok   " + test.getKey());
            } catch (Throwable e) {
                failed++;
                System.out.println("FAIL " + test.getKey() + ": " + e);
                e.printStackTrace(System.out);
            }
        }
        for (File f : dir.listFiles()) f.delete();
        dir.delete();
        System.out.println(passed + " passed, " + failed + " failed");
        System.exit(failed == 0 ? 0 : 1);
    }
}
