import t from "tap";
import { decodeAttributes } from "../../../src/extproc/wire.js";

t.test("request attributes become plain strings; structured values are not read", async (t) => {
  t.equal(decodeAttributes(undefined), undefined, "Envoy sent none");
  t.equal(decodeAttributes({}), undefined);
  const decoded = decodeAttributes({
    "envoy.filters.http.ext_proc": {
      fields: {
        "source.address": { stringValue: "127.0.0.2:40000" },
        "source.principal": { stringValue: "" },
        "source.port": { numberValue: 40000 },
        "connection.mtls": { boolValue: false },
        "xds.route_metadata": { structValue: { fields: {} } },
      },
    },
  });
  t.same(
    [...(decoded ?? [])],
    [
      ["source.address", "127.0.0.2:40000"],
      ["source.principal", ""],
      ["source.port", "40000"],
      ["connection.mtls", "false"],
    ],
  );
});
