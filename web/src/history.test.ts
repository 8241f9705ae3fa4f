import { describe, expect, it } from "vitest";
import { imagesToScore, QueryHistory, setsOf, type Navigator } from "./history";
import { DEFAULTS, decodeState, encodeState, queryKey } from "./state";

function navigator() {
  const entries: string[] = [""];
  let at = 0;
  const nav: Navigator = {
    replace: (search) => (entries[at] = search),
    push: (search) => {
      entries.splice(at + 1);
      entries.push(search);
      at++;
    },
  };
  return { nav, entries, back: () => entries[--at] };
}

describe("history of queries", () => {
  it("makes each query run a step, so Back returns to the query before with its fields", () => {
    const { nav, entries, back } = navigator();
    const queries = new QueryHistory<string>(nav);
    const first = { ...DEFAULTS, node: "features.6:5" };
    expect(queries.step(first)).toBe(false); // nothing shown yet: the first query is no step
    queries.remember(first, "result 1");
    // the user edits the fields (each edit replaced the URL), then runs the query
    const second = { ...first, images: "sandal - overall", target: "class:sandal" };
    nav.replace(encodeState(second));
    expect(queries.step(second)).toBe(true);
    queries.remember(second, "result 2");
    expect(entries.length).toBe(2);
    const before = decodeState(back());
    expect(queryKey(before)).toBe(queryKey(first)); // Back: the first query's fields...
    expect(before.node).toBe("features.6:5"); // ...and the selection as it was
    expect(queries.recall(before)).toBe("result 1"); // and its result, without asking the server
    expect(queries.isShown(before)).toBe(false);
    queries.showing(before);
    expect(queries.isShown(before)).toBe(true);
    expect(queries.step(before)).toBe(false); // running what is shown is no new step
  });

  it("keeps the latest results only", () => {
    const queries = new QueryHistory<number>(navigator().nav, 2);
    const states = [1, 2, 3].map((k) => ({ ...DEFAULTS, target: `logit:${k}` }));
    states.forEach((s, k) => queries.remember(s, k));
    expect(queries.recall(states[0])).toBeNull();
    expect(queries.recall(states[1])).toBe(1);
    queries.remember({ ...DEFAULTS, target: "logit:4" }, 4); // states[2] is now the oldest
    expect(queries.recall(states[2])).toBeNull();
    expect(queries.recall(states[1])).toBe(1);
  });

  it("counts the images a query scores from the sets it names and the sample", () => {
    const sets = [{ name: "overall", count: 10000 }, { name: "sandal", count: 1000 }, { name: "sandal_2", count: 30 }, { name: "bag", count: 20 }];
    expect(setsOf("sandal - overall", sets).map((s) => s.name).sort()).toEqual(["overall", "sandal"]);
    expect(setsOf("2*sandal_2 + bag", sets).map((s) => s.name).sort()).toEqual(["bag", "sandal_2"]);
    expect(imagesToScore({ images: "sandal - overall", sample: null }, sets)).toBe(1000); // the server's 500 each
    expect(imagesToScore({ images: "overall", sample: 0 }, sets)).toBe(10000);
    expect(imagesToScore({ images: "bag + sandal", sample: 100 }, sets)).toBe(120);
  });
});
