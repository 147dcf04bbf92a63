// A small HTTP service on OpenJDK 17 with only the JDK's own HTTP server
// (com.sun.net.httpserver): a page, a JSON API that hashes and sums, and a 404.
// Started from source with `java Hello.java PORT` (the launcher compiles it in memory).
import com.sun.net.httpserver.HttpExchange;
import com.sun.net.httpserver.HttpServer;
import java.io.IOException;
import java.io.OutputStream;
import java.net.InetSocketAddress;
import java.net.URLDecoder;
import java.nio.charset.StandardCharsets;
import java.security.MessageDigest;
import java.util.HexFormat;
import java.util.LinkedHashMap;
import java.util.Map;

public class Hello {
    public static void main(String[] args) throws IOException {
        int port = args.length > 0 ? Integer.parseInt(args[0]) : 8080;
        HttpServer server = HttpServer.create(new InetSocketAddress(port), 0);
        server.createContext("/", Hello::handle);
        server.start();
        System.out.println("java-http listening on port " + port);
    }

    private static Map<String, String> query(HttpExchange ex) {
        Map<String, String> out = new LinkedHashMap<>();
        String raw = ex.getRequestURI().getRawQuery();
        if (raw == null) return out;
        for (String pair : raw.split("&")) {
            String[] kv = pair.split("=", 2);
            out.put(URLDecoder.decode(kv[0], StandardCharsets.UTF_8), kv.length > 1 ? URLDecoder.decode(kv[1], StandardCharsets.UTF_8) : "");
        }
        return out;
    }

    private static void handle(HttpExchange ex) throws IOException {
        String path = ex.getRequestURI().getPath();
        Map<String, String> q = query(ex);
        try {
            switch (path) {
                case "/" -> send(ex, 200, "text/html; charset=utf-8",
                        "<!doctype html><html><head><title>aim java-http</title></head>"
                                + "<body><h1>Hello from Java " + Runtime.version().feature() + "</h1></body></html>\n");
                case "/api/hash" -> {
                    String name = q.getOrDefault("name", "world");
                    byte[] digest = MessageDigest.getInstance("SHA-256").digest(name.getBytes(StandardCharsets.UTF_8));
                    send(ex, 200, "application/json", "{\"name\":\"" + name.replace("\"", "") + "\",\"sha256\":\"" + HexFormat.of().formatHex(digest) + "\"}\n");
                }
                case "/api/sum" -> {
                    long sum = 0;
                    for (String n : q.getOrDefault("n", "").split(",")) if (!n.isEmpty()) sum += Long.parseLong(n);
                    send(ex, 200, "application/json", "{\"sum\":" + sum + "}\n");
                }
                default -> send(ex, 404, "application/json", "{\"error\":\"not found\"}\n");
            }
        } catch (Exception e) {
            send(ex, 500, "text/plain", e.getClass().getSimpleName() + "\n");
        }
    }

    private static void send(HttpExchange ex, int status, String type, String body) throws IOException {
        byte[] bytes = body.getBytes(StandardCharsets.UTF_8);
        ex.getResponseHeaders().set("Content-Type", type);
        ex.sendResponseHeaders(status, bytes.length);
        try (OutputStream out = ex.getResponseBody()) {
            out.write(bytes);
        }
    }
}
