// Names the matched route to the upstream and to the client, so both sides of a request can tell
// that the guard saw it and which route's policies applied.
import type { Exchange, Stage, StageRun, Step } from "../types.js";
import type { AnnotateConfig } from "./config.js";

export function createAnnotateStage({ requestHeader, responseHeader }: AnnotateConfig): Stage {
  return {
    name: "annotate",
    start(exchange: Exchange): StageRun | undefined {
      if (requestHeader === "" && responseHeader === "") return undefined;
      const route = exchange.route.name;
      const run: StageRun = {
        onRequestHeaders(): Step {
          const edits = requestHeader === "" ? undefined : { setHeaders: { [requestHeader]: route } };
          const needs = responseHeader === "" ? undefined : { responseHeaders: true };
          return { type: "continue", ...(edits && { edits }), ...(needs && { needs }) };
        },
      };
      if (responseHeader !== "") {
        run.onResponseHeaders = () => ({ type: "continue", edits: { setHeaders: { [responseHeader]: route } } });
      }
      return run;
    },
  };
}
