import t from "tap";
import { type CpuProfile, sampleShare } from "../../../bench/pipeline/cpu-profile.js";

const frame = (functionName: string, url: string) => ({ functionName, url });

// (root) → handle (pipeline.js) → observe (drift/monitor.js) → add (sketches) ; handle → parse (json.js)
const profile: CpuProfile = {
  nodes: [
    { id: 1, callFrame: frame("(root)", ""), children: [2, 6] },
    { id: 2, callFrame: frame("handle", "file:///app/dist/src/pipeline/pipeline.js"), children: [3, 5] },
    { id: 3, callFrame: frame("observe", "file:///app/dist/src/pipeline/drift/monitor.js"), children: [4] },
    { id: 4, callFrame: frame("add", "file:///app/node_modules/@datadog/sketches-js/dist/ddsketch.js") },
    { id: 5, callFrame: frame("parse", "file:///app/dist/src/contracts/json.js") },
    { id: 6, callFrame: frame("(garbage collector)", "") },
    { id: 7, callFrame: frame("(idle)", "") },
  ],
  samples: [2, 3, 4, 4, 5, 6, 3, 7, 7, 7],
};

t.test("the share of running samples in matching code counts its callees, once, and nothing else", async (t) => {
  t.equal(
    sampleShare(profile, (url) => url.includes("/pipeline/drift/")),
    4 / 7,
    "observe twice and the library it calls twice, of 7 samples not idle",
  );
  t.equal(
    sampleShare(profile, (url) => url.includes("/pipeline/")),
    6 / 7,
    "nested matches are not counted twice",
  );
  t.equal(
    sampleShare(profile, () => false),
    0,
  );
  t.equal(
    sampleShare({ nodes: [], samples: [] }, () => true),
    0,
    "an empty profile",
  );
});
