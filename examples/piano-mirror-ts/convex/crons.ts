import { cronJobs } from "convex/server";
import { internal } from "./_generated/api";
import { PURGE_INTERVAL_HOURS } from "./lib/limits";

const crons = cronJobs();

crons.interval("purge expired signaling messages", { hours: PURGE_INTERVAL_HOURS }, internal.signaling.purgeExpired);

export default crons;
