// The bench's classes reach the guard only as source addresses: the identity rules it configures must
// give each class's address, as Envoy reports it (ip:port), that class, whatever header a client sends.
import { Registry } from "prom-client";
import t from "tap";
import { CLASS_SOURCES, classRules } from "../../../bench/shed/traffic.js";
import { PRIORITIES } from "../../../bench/shed/workload.js";
import { configSchema } from "../../../src/config/schema.js";
import { stageConfigs } from "../../../src/pipeline/build.js";
import { createIdentify } from "../../../src/pipeline/identity/identify.js";

t.test("each class's source address is given its class by the bench's identity rules", async (t) => {
  const config = configSchema.parse({
    identity: { priority: { rules: classRules() } },
    routes: [{ name: "chat", match: { pathPrefix: "/v1/chat/completions" } }],
  });
  const identify = createIdentify(stageConfigs(config).identity, new Registry());
  t.equal(new Set(Object.values(CLASS_SOURCES)).size, PRIORITIES.length, "one address per class");
  for (const priority of PRIORITIES) {
    const identity = identify(
      {
        method: "POST",
        path: "/v1/chat/completions",
        authority: "model",
        headers: new Map([["x-guard-priority", priority === "critical" ? "sheddable" : "critical"]]),
        requestId: "r",
        endOfStream: true,
        attributes: new Map([["source.address", `${CLASS_SOURCES[priority]}:40123`]]),
      },
      "chat",
    );
    t.equal(identity.priority, priority, `${CLASS_SOURCES[priority]} is ${priority}`);
  }
});
