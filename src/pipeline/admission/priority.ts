// Priority classes as admission orders them. The vocabulary is shared (identity derives each
// request's class once, before any stage runs); admission only compares classes.
import { PRIORITIES, type Priority } from "../identity/priority.js";

export { PRIORITIES, type Priority } from "../identity/priority.js";

/** Lower number = more important; used to compare classes. */
export function rank(priority: Priority): number {
  return PRIORITIES.indexOf(priority);
}
