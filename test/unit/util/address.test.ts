import t from "tap";
import { parseAddress } from "../../../src/util/address.js";

t.test("host:port, with names, IPv4 and bracketed IPv6 (brackets dropped)", async (t) => {
  t.same(parseAddress("127.0.0.1:50051"), { host: "127.0.0.1", port: 50051 });
  t.same(parseAddress("localhost:9464"), { host: "localhost", port: 9464 });
  t.same(parseAddress("[::1]:50051"), { host: "::1", port: 50051 });
  t.same(parseAddress("[::]:8080"), { host: "::", port: 8080 });
  t.same(parseAddress("[fe80::1%eth0]:1"), { host: "fe80::1%eth0", port: 1 });
  t.same(parseAddress("127.0.0.1:0"), { host: "127.0.0.1", port: 0 }, "port 0: any free port");
  t.same(parseAddress("h:65535"), { host: "h", port: 65535 });
});

t.test("unix:/path is a socket path", async (t) => {
  t.same(parseAddress("unix:/run/guard/ext_proc.sock"), { path: "/run/guard/ext_proc.sock" });
  t.same(parseAddress("unix:relative.sock"), { path: "relative.sock" });
});

t.test("anything else is refused with the address in the message", async (t) => {
  for (const bad of [
    "",
    "localhost",
    ":8080",
    "[]:8080",
    "host:",
    "host:http",
    "host:-1",
    "host:65536",
    "host:123456",
    "host:1.5",
    "::1:8080",
    "[::1]",
    "unix:",
  ]) {
    t.throws(() => parseAddress(bad), { message: new RegExp(`"${bad.replace(/[[\]]/g, "\\$&")}"`) }, `"${bad}"`);
  }
});
