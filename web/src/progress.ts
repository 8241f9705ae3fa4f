/** A job's progress in words: steps done of all, in their unit, and the time left (the server's estimate). */
import { ended, type Job } from "./api";

/** "35 s", "3 min 20 s", "1 h 5 min". */
export function etaText(seconds: number): string {
  if (seconds < 1) return "under a second";
  if (seconds < 59.5) return `${Math.round(seconds)} s`;
  const minutes = Math.floor(Math.round(seconds) / 60);
  const rest = Math.round(seconds) % 60;
  if (minutes < 60) return rest ? `${minutes} min ${rest} s` : `${minutes} min`;
  return `${Math.floor(minutes / 60)} h ${minutes % 60} min`;
}

/** Where a job stands in words: "120/256 steps · 35 s left", "waiting (more urgent work first)", "paused at ...". */
export function stepsText(job: Pick<Job, "state"> & Partial<Job>): string {
  if (job.state === "queued") return "waiting for more urgent work";
  const counted = typeof job.done === "number" && typeof job.total === "number" && job.total > 0;
  const steps = counted ? `${job.done!.toLocaleString()}/${job.total!.toLocaleString()} ${job.unit || "steps"}` : "";
  if (job.paused) return `paused${steps ? ` at ${steps}` : ""} while more urgent work runs`;
  if (!counted || ended(job)) return steps;
  if (typeof job.eta === "number") return `${steps} · ${etaText(job.eta)} left`;
  return job.done! < job.total! ? `${steps} · estimating the time left` : steps;
}

/** The job's message and where it stands, for one line: "rendering a:1 · 120/256 steps · 35 s left". */
export function progressText(job: Pick<Job, "state"> & Partial<Job>): string {
  const steps = stepsText(job);
  const message = job.state === "queued" ? `waiting: ${job.description || job.kind || "job"}` : job.message ?? "";
  return [message, job.state === "queued" ? "" : steps].filter(Boolean).join(" · ");
}

/** The steps for a narrow row: "120/256 · 35 s", "paused", or nothing. */
export function shortSteps(job: Pick<Job, "state"> & Partial<Job>): string {
  if (job.state === "queued" || ended(job)) return "";
  if (job.paused) return "paused";
  if (typeof job.done !== "number" || typeof job.total !== "number" || job.total <= 0) return "";
  const eta = typeof job.eta === "number" ? (job.eta < 1 ? " · <1 s" : ` · ${etaText(job.eta)}`) : "";
  return `${job.done.toLocaleString()}/${job.total.toLocaleString()}${eta}`;
}
