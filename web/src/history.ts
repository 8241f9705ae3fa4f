/**
 * Back and Forward through queries: each query run is a history step, and stepping back shows that query's
 * graph and scores again (from the page's cache of recent results, or, when it has gone from there, from what
 * the server computed before: asked with `start: false`, so going back never starts work by itself).
 */
import type { SetInfo } from "./api";
import { encodeState, queryKey, withQuery, type ViewState } from "./state";

/** How many query results the page keeps (a big model's is megabytes). */
export const KEEP_RESULTS = 8;
/** The server's sample when a query does not name one (`viscnn.server.queries.DEFAULT_SAMPLE`). */
export const SERVER_SAMPLE = 500;
/** A query opened with the page (its URL) starts by itself only up to this many images; beyond, it asks. */
export const AUTO_START_IMAGES = 2000;

/** Moves through the browser's history: replaces the current entry's query string, or pushes a new one. */
export interface Navigator {
  replace(search: string): void;
  push(search: string): void;
}

export const browserNavigator: Navigator = {
  replace: (search) => history.replaceState(null, "", `${location.pathname}${search}`),
  push: (search) => history.pushState(null, "", `${location.pathname}${search}`),
};

/** The recent query results by query key, and the history steps between queries. */
export class QueryHistory<T> {
  private results = new Map<string, T>();
  /** The query whose result is on screen: its key and the state it was run with. */
  private shown: { key: string; state: ViewState } | null = null;

  constructor(private readonly navigator: Navigator = browserNavigator, private readonly keep = KEEP_RESULTS) {}

  remember(state: ViewState, result: T): void {
    const key = queryKey(state);
    this.results.delete(key);
    this.results.set(key, result);
    while (this.results.size > this.keep) this.results.delete(this.results.keys().next().value as string);
    this.shown = { key, state: { ...state } };
  }

  /** The result of the query `state` names, if the page still has it. */
  recall(state: ViewState): T | null {
    const key = queryKey(state);
    const result = this.results.get(key);
    if (result === undefined) return null;
    this.results.delete(key);
    this.results.set(key, result);
    return result;
  }

  /** Marks `state`'s query as the one on screen (a result recalled from the cache or the server). */
  showing(state: ViewState): void {
    this.shown = { key: queryKey(state), state: { ...state } };
  }

  /** True when `state` names the query on screen. */
  isShown(state: ViewState): boolean {
    return this.shown?.key === queryKey(state);
  }

  /**
   * The user runs the query `state` names: when another query is on screen, the current history entry goes back
   * to that one's fields (edits to the fields replaced them) and a new entry is pushed for this one, so Back
   * returns to the query before. Returns whether a step was pushed.
   */
  step(state: ViewState): boolean {
    if (!this.shown || this.shown.key === queryKey(state)) return false;
    this.navigator.replace(encodeState(withQuery(state, this.shown.state)));
    this.navigator.push(encodeState(state));
    return true;
  }
}

/** The set names an image-set expression uses (names are matched whole, longest first). */
export function setsOf(expression: string, sets: SetInfo[]): SetInfo[] {
  const found: SetInfo[] = [];
  let rest = ` ${expression} `;
  for (const set of [...sets].sort((a, b) => b.name.length - a.name.length)) {
    const escaped = set.name.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
    const pattern = new RegExp(`(^|[\\s+\\-*()])${escaped}(?=$|[\\s+\\-*()])`);
    if (pattern.test(rest)) {
      found.push(set);
      rest = rest.replace(pattern, "$1 ");
    }
  }
  return found;
}

/** How many images a query would score (at most; sets the server has stored cost nothing). */
export function imagesToScore(state: Pick<ViewState, "images" | "sample">, sets: SetInfo[]): number {
  const sample = state.sample ?? SERVER_SAMPLE;
  return setsOf(state.images, sets).reduce((sum, set) => sum + (sample === 0 ? set.count : Math.min(set.count, sample)), 0);
}
