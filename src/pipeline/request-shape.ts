// Which inference API a request speaks, told by its path alone: the complexity stage reads the body
// by it, and the guard's own answers take the error shape that API's clients parse.

/** The APIs a path names: OpenAI's chat, completions, embeddings and responses, and KServe V2 inference. */
export type PathShape = "chat" | "completions" | "embeddings" | "responses" | "kserve";

const KSERVE_INFER_PATH = /\/v2\/models\/[^/]+(\/versions\/[^/]+)?\/infer$/;

export function shapeFromPath(rawPath: string): PathShape | undefined {
  const query = rawPath.indexOf("?");
  const path = query < 0 ? rawPath : rawPath.slice(0, query);
  if (path.endsWith("/chat/completions")) return "chat";
  if (path.endsWith("/completions")) return "completions";
  if (path.endsWith("/embeddings")) return "embeddings";
  if (path.endsWith("/responses")) return "responses";
  if (KSERVE_INFER_PATH.test(path)) return "kserve";
  return undefined;
}
