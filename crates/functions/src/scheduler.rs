//! Scheduled functions and crons, durable because they are rows in system tables.
//!
//! A job is a row of `_scheduled_functions` written in the scheduling transaction: a mutation that
//! fails schedules nothing, and a committed job survives a restart. The scheduler task finds due jobs
//! and runs them as `Identity::System`:
//!
//! - a mutation settles its job (`success` or `failed`) inside its own transaction, after checking the
//!   job is still `pending`, so it runs exactly once however often the scheduler looks at it;
//! - an action first moves its job to `inProgress` in a transaction of its own, then runs, then
//!   settles it: at most once. An action found `inProgress` when the scheduler starts was cut off by a
//!   restart and is marked `failed`, as Convex does, never run again.
//!
//! A cron is a row of `_cron_jobs` holding its next run time. Firing it schedules a job for that time
//! and moves the next run time forward in one transaction, so a restart can neither lose nor repeat a
//! run; runs missed while the deployment was down collapse into one.
//!
//! Due jobs are found by reading the latest snapshot (no transaction, so no read limits), and every
//! decision is checked again inside the transaction that acts on it.

use std::collections::{BTreeMap, HashMap};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use livebase_store::{
    BY_CREATION_TIME, CommitRecord, Document, KeyRange, Order, Snapshot, Transaction, TransactionError,
};
use livebase_value::{DocumentId, Object, Value};
use tokio::sync::{broadcast, oneshot};
use tokio::task::{JoinError, JoinHandle, JoinSet};

use crate::context::Identity;
use crate::error::{FunctionError, RegistryError};
use crate::limits::{
    FINISHED_JOB_RETENTION, MAX_JOBS_PRUNED_PER_COMMIT, MAX_JOBS_SCHEDULED_PER_CALL, MAX_RUNNING_SCHEDULED_ACTIONS,
    MAX_SCHEDULE_AHEAD_MILLIS,
};
use crate::path::FunctionPath;
use crate::registry::FunctionKind;
use crate::runtime::{Caller, RunOnce, Runtime, now_millis};

/// The system table of scheduled jobs.
pub const SCHEDULED_FUNCTIONS_TABLE: &str = "_scheduled_functions";
/// The system table of the app's crons and their next run times.
pub const CRON_JOBS_TABLE: &str = "_cron_jobs";

const NAME: &str = "name";
const ARGS: &str = "args";
const SCHEDULED_TIME: &str = "scheduledTime";
/// An object, as in Convex: `{kind}`, plus `error` when the kind is `failed`.
const STATE: &str = "state";
const KIND: &str = "kind";
const COMPLETED_TIME: &str = "completedTime";
const ERROR: &str = "error";
const SPEC: &str = "spec";
const NEXT_RUN: &str = "nextRun";

/// Where a scheduled job is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum JobState {
    Pending,
    /// An action that started; mutations never show it, they settle in the transaction they run in.
    InProgress,
    Success,
    Failed,
    Canceled,
}

impl JobState {
    fn as_str(self) -> &'static str {
        match self {
            JobState::Pending => "pending",
            JobState::InProgress => "inProgress",
            JobState::Success => "success",
            JobState::Failed => "failed",
            JobState::Canceled => "canceled",
        }
    }

    fn is_finished(self) -> bool {
        matches!(self, JobState::Success | JobState::Failed | JobState::Canceled)
    }

    /// The stored `state`; `error` is given exactly for `Failed`.
    fn to_value(self, error: Option<String>) -> Value {
        assert_eq!(self == JobState::Failed, error.is_some(), "only a failed job has an error: {error:?}");
        let mut state = Object::from([(KIND.to_owned(), Value::from(self.as_str()))]);
        if let Some(error) = error {
            state.insert(ERROR.to_owned(), Value::String(error));
        }
        Value::Object(state)
    }

    fn parse(state: &str) -> JobState {
        match state {
            "pending" => JobState::Pending,
            "inProgress" => JobState::InProgress,
            "success" => JobState::Success,
            "failed" => JobState::Failed,
            "canceled" => JobState::Canceled,
            other => panic!("`{SCHEDULED_FUNCTIONS_TABLE}` holds only states this module writes, not `{other}`"),
        }
    }
}

/// A row of `_scheduled_functions`.
#[derive(Clone, Debug, PartialEq)]
pub struct ScheduledJob {
    pub id: DocumentId,
    /// The function's path.
    pub name: String,
    pub args: Object,
    /// Milliseconds since the Unix epoch.
    pub scheduled_time: f64,
    pub state: JobState,
    pub completed_time: Option<f64>,
    /// Why the job failed.
    pub error: Option<String>,
}

impl ScheduledJob {
    fn from_document(document: &Document) -> ScheduledJob {
        let malformed =
            || -> ! { panic!("`{SCHEDULED_FUNCTIONS_TABLE}` holds only rows this module writes: {document:?}") };
        let string = |field| match document.get(field) {
            Some(Value::String(value)) => Some(value.clone()),
            _ => None,
        };
        let number = |field| match document.get(field) {
            Some(Value::Float64(value)) => Some(*value),
            _ => None,
        };
        // Rows written before Livebase used Convex's shape hold `args` as a bare object, `state` as a
        // bare string and `error` beside it. Data directories from then still hold them, so both shapes
        // are read; the scheduler writes only Convex's.
        let args = match document.get(ARGS) {
            Some(Value::Array(args)) => match args.as_slice() {
                [Value::Object(args)] => args.clone(),
                _ => malformed(),
            },
            Some(Value::Object(args)) => args.clone(),
            _ => malformed(),
        };
        let (state, error) = match document.get(STATE) {
            Some(Value::Object(state)) => {
                let Some(Value::String(kind)) = state.get(KIND) else { malformed() };
                let error = match state.get(ERROR) {
                    Some(Value::String(error)) => Some(error.clone()),
                    _ => None,
                };
                (JobState::parse(kind), error)
            }
            Some(Value::String(state)) => (JobState::parse(state), string(ERROR)),
            _ => malformed(),
        };
        ScheduledJob {
            id: document.id(),
            name: string(NAME).unwrap_or_else(|| malformed()),
            args,
            scheduled_time: number(SCHEDULED_TIME).unwrap_or_else(|| malformed()),
            state,
            completed_time: number(COMPLETED_TIME),
            error,
        }
    }
}

/// Every job in `snapshot`, in order of scheduling.
pub(crate) fn jobs(snapshot: &Snapshot) -> Vec<ScheduledJob> {
    snapshot.documents(SCHEDULED_FUNCTIONS_TABLE).iter().map(|document| ScheduledJob::from_document(document)).collect()
}

/// Counts one more job scheduled by a call that scheduled `already` before it.
pub(crate) fn check_scheduled_count(already: usize) -> Result<(), FunctionError> {
    if already >= MAX_JOBS_SCHEDULED_PER_CALL {
        return Err(FunctionError::failed(format!(
            "A function may schedule at most {MAX_JOBS_SCHEDULED_PER_CALL} jobs (MAX_JOBS_SCHEDULED_PER_CALL)"
        )));
    }
    Ok(())
}

/// Writes a pending job into `tx`: it exists exactly when `tx` commits.
pub(crate) fn schedule(
    tx: &mut Transaction,
    path: &str,
    args: Object,
    at: f64,
    now: f64,
) -> Result<DocumentId, FunctionError> {
    let path = FunctionPath::parse(path)?;
    if !at.is_finite() || at > now + MAX_SCHEDULE_AHEAD_MILLIS {
        return Err(FunctionError::failed(format!(
            "Can't schedule `{path}` at {at}: jobs run at most {MAX_SCHEDULE_AHEAD_MILLIS} ms ahead \
             (MAX_SCHEDULE_AHEAD_MILLIS); times are milliseconds since the Unix epoch"
        )));
    }
    let fields = Object::from([
        (NAME.to_owned(), Value::String(path.to_string())),
        (ARGS.to_owned(), Value::Array(vec![Value::Object(args)])),
        (SCHEDULED_TIME.to_owned(), Value::Float64(at)),
        (STATE.to_owned(), JobState::Pending.to_value(None)),
    ]);
    Ok(tx.system_tables().insert(SCHEDULED_FUNCTIONS_TABLE, fields)?)
}

/// Cancels a job that has not finished; a finished one stays as it is (Convex does the same). A running
/// action runs on, but its result is not recorded.
pub(crate) fn cancel(tx: &mut Transaction, id: DocumentId, now: f64) -> Result<(), FunctionError> {
    if tx.table_name(id.table()) != Some(SCHEDULED_FUNCTIONS_TABLE) {
        return Err(FunctionError::failed(format!("`{}` is not the id of a scheduled function", id.encode())));
    }
    let Some(document) = tx.get(id)? else { return Ok(()) };
    if matches!(ScheduledJob::from_document(&document).state, JobState::Pending | JobState::InProgress) {
        set_state(tx, id, JobState::Canceled, now, None)?;
    }
    Ok(())
}

fn set_state(
    tx: &mut Transaction,
    id: DocumentId,
    state: JobState,
    now: f64,
    error: Option<String>,
) -> Result<(), TransactionError> {
    let mut changes = BTreeMap::from([(STATE.to_owned(), Some(state.to_value(error)))]);
    if state != JobState::InProgress {
        changes.insert(COMPLETED_TIME.to_owned(), Some(Value::Float64(now)));
    }
    // Drops the error an old-shape row (see `ScheduledJob::from_document`) kept beside its state.
    changes.insert(ERROR.to_owned(), None);
    tx.system_tables().patch(id, changes)
}

/// Records `result` as the job's end if the job is still `expected`, returning whether it was. The check
/// and the write share `tx`, so of two attempts to settle a job at most one commits.
pub(crate) fn settle(
    tx: &mut Transaction,
    id: DocumentId,
    expected: JobState,
    result: &Result<Value, FunctionError>,
    now: f64,
) -> Result<bool, TransactionError> {
    let Some(document) = tx.get(id)? else { return Ok(false) };
    if ScheduledJob::from_document(&document).state != expected {
        return Ok(false);
    }
    match result {
        Ok(_) => set_state(tx, id, JobState::Success, now, None)?,
        Err(error) => set_state(tx, id, JobState::Failed, now, Some(error.to_string()))?,
    }
    Ok(true)
}

/// Deletes up to `MAX_JOBS_PRUNED_PER_COMMIT` of the jobs that finished more than
/// `FINISHED_JOB_RETENTION` before `now`, checking each inside `tx`; returns how many.
pub(crate) fn prune_finished(
    tx: &mut Transaction,
    finished: &[ScheduledJob],
    now: f64,
) -> Result<usize, TransactionError> {
    let cutoff = now - FINISHED_JOB_RETENTION.as_secs_f64() * 1_000.0;
    let mut pruned = 0;
    for job in finished.iter().filter(|job| job.completed_time.is_some_and(|completed| completed < cutoff)) {
        if pruned == MAX_JOBS_PRUNED_PER_COMMIT {
            break;
        }
        let Some(document) = tx.get(job.id)? else { continue };
        let current = ScheduledJob::from_document(&document);
        if current.state.is_finished() && current.completed_time.is_some_and(|completed| completed < cutoff) {
            tx.system_tables().delete(job.id)?;
            pruned += 1;
        }
    }
    Ok(pruned)
}

/// When the oldest finished job in `jobs` is due to be pruned.
fn next_prune(jobs: &[ScheduledJob]) -> Option<f64> {
    let retention = FINISHED_JOB_RETENTION.as_secs_f64() * 1_000.0;
    jobs.iter()
        .filter(|job| job.state.is_finished())
        .filter_map(|job| job.completed_time)
        .reduce(f64::min)
        .map(|oldest| oldest + retention)
}

/// When a cron runs.
#[derive(Clone, Debug, PartialEq)]
pub enum CronSchedule {
    /// Every so often (Convex's `crons.interval`), first one interval after the cron is first declared.
    Every(Duration),
    /// A cron expression in UTC: 5 fields (minute first) or 6 (seconds first), e.g. `0 * * * *`.
    Expression(String),
}

/// A cron as declared, checked.
pub(crate) struct Cron {
    pub(crate) path: FunctionPath,
    pub(crate) args: Object,
    schedule: ParsedSchedule,
    /// Identifies the declaration: when it changes, the stored next run time is computed afresh.
    spec: String,
}

enum ParsedSchedule {
    Every(f64),
    // Boxed: a parsed expression is some 300 bytes, an interval 8.
    Expression(Box<croner::Cron>),
}

impl Cron {
    pub(crate) fn new(name: &str, schedule: CronSchedule, path: &str, args: Object) -> Result<Cron, RegistryError> {
        let invalid = |why: String| RegistryError::InvalidCron { name: name.to_owned(), why };
        let path = FunctionPath::parse(path)?;
        let parsed = match &schedule {
            CronSchedule::Every(interval) if interval.is_zero() => {
                return Err(invalid("its interval is zero".to_owned()));
            }
            CronSchedule::Every(interval) => ParsedSchedule::Every(interval.as_secs_f64() * 1_000.0),
            CronSchedule::Expression(expression) => ParsedSchedule::Expression(Box::new(
                croner::Cron::from_str(expression)
                    .map_err(|error| invalid(format!("bad cron expression `{expression}`: {error}")))?,
            )),
        };
        let spec = format!("{schedule:?} {path} {}", Value::Object(args.clone()));
        Ok(Cron { path, args, schedule: parsed, spec })
    }

    /// The first run time after `now` on the cron's schedule; `previous`, the run just made, keeps an
    /// interval's phase.
    fn next_run(&self, previous: Option<f64>, now: f64) -> f64 {
        match &self.schedule {
            ParsedSchedule::Every(interval) => match previous {
                None => now + interval,
                Some(previous) => previous + ((now - previous) / interval).floor().max(0.0) * interval + interval,
            },
            ParsedSchedule::Expression(expression) => {
                let now = chrono::DateTime::from_timestamp_millis(now as i64).expect("wall clock times are in range");
                let next = expression
                    .find_next_occurrence(&now, false)
                    .expect("an expression that parsed has a next occurrence");
                next.timestamp_millis() as f64
            }
        }
    }
}

/// Makes `_cron_jobs` match the declared crons: new ones get their first run time, changed ones a new
/// one, removed ones go; unchanged ones keep theirs, so a restart neither skips nor repeats a run.
pub(crate) fn sync_crons(
    tx: &mut Transaction,
    crons: &BTreeMap<String, Cron>,
    now: f64,
) -> Result<(), TransactionError> {
    let mut stored = HashMap::new();
    for document in tx.scan(CRON_JOBS_TABLE, BY_CREATION_TIME, KeyRange::all(), Order::Asc)? {
        let document = document?;
        let Some(Value::String(name)) = document.get(NAME) else { panic!("cron rows have a name: {document:?}") };
        stored.insert(name.clone(), document);
    }
    for (name, cron) in crons {
        let fields = Object::from([
            (NAME.to_owned(), Value::from(name.as_str())),
            (SPEC.to_owned(), Value::from(cron.spec.as_str())),
            (NEXT_RUN.to_owned(), Value::Float64(cron.next_run(None, now))),
        ]);
        match stored.remove(name) {
            Some(document) if document.get(SPEC) == Some(&Value::from(cron.spec.as_str())) => {}
            Some(document) => tx.system_tables().replace(document.id(), fields)?,
            None => {
                tx.system_tables().insert(CRON_JOBS_TABLE, fields)?;
            }
        }
    }
    for document in stored.into_values() {
        tx.system_tables().delete(document.id())?;
    }
    Ok(())
}

fn next_run_of(document: &Document) -> f64 {
    let Some(Value::Float64(next_run)) = document.get(NEXT_RUN) else {
        panic!("cron rows have a next run: {document:?}")
    };
    *next_run
}

/// Schedules the cron's due run and moves its next run time past `now`, in one transaction.
fn fire_cron(tx: &mut Transaction, cron: &Cron, id: DocumentId, now: f64) -> Result<(), FunctionError> {
    let Some(document) = tx.get(id)? else { return Ok(()) };
    let due = next_run_of(&document);
    if due > now {
        return Ok(());
    }
    schedule(tx, &cron.path.to_string(), cron.args.clone(), due, now)?;
    let next = BTreeMap::from([(NEXT_RUN.to_owned(), Some(Value::Float64(cron.next_run(Some(due), now))))]);
    Ok(tx.system_tables().patch(id, next)?)
}

/// The running scheduler. [`SchedulerHandle::stop`] stops it; dropping the handle stops it too, without
/// waiting.
pub struct SchedulerHandle {
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<()>,
}

impl SchedulerHandle {
    /// Stops the scheduler and waits until it has: running actions are cut off (their jobs stay
    /// `inProgress`, to be marked `failed` by the next start) and the scheduler's hold on the store is
    /// gone.
    pub async fn stop(mut self) {
        self.stop.take();
        if let Err(error) = (&mut self.task).await {
            tracing::error!("the scheduler failed: {error}");
        }
    }
}

impl Drop for SchedulerHandle {
    fn drop(&mut self) {
        self.stop.take();
    }
}

impl Runtime {
    /// Starts running scheduled jobs and the registry's crons. Run one scheduler per store: two would
    /// not run a job twice (every run is checked in its transaction) but each would cut off the
    /// other's actions when it starts.
    pub async fn start_scheduler(&self) -> Result<SchedulerHandle, FunctionError> {
        let now = now_millis();
        let store = self.store();
        let registry = self.registry();
        store.transact(|tx| sync_crons(tx, registry.crons(), now)).await?;
        let interrupted: Vec<_> =
            jobs(&store.snapshot()).into_iter().filter(|job| job.state == JobState::InProgress).collect();
        let cut_off = Err(FunctionError::internal("The server restarted while the action ran"));
        store
            .transact(|tx| {
                for job in &interrupted {
                    settle(tx, job.id, JobState::InProgress, &cut_off, now)?;
                }
                Ok(())
            })
            .await?;
        let (stop, stopped) = oneshot::channel();
        let task = tokio::spawn(self.clone().schedule_loop(stopped));
        Ok(SchedulerHandle { stop: Some(stop), task })
    }

    async fn schedule_loop(self, mut stopped: oneshot::Receiver<()>) {
        let mut actions = JoinSet::new();
        // Which job each running action task serves, to settle the job if the task panics.
        let mut running = HashMap::new();
        'schedule: loop {
            // Subscribed before looking, so a job scheduled after the look still wakes the loop.
            let mut changes = self.store().subscribe();
            while let Some(joined) = actions.try_join_next_with_id() {
                self.action_task_ended(joined, &mut running).await;
            }
            let now = now_millis();
            let snapshot = self.store().snapshot();
            let mut progressed = self.fire_due_crons(&snapshot, now).await;
            let (mut pending, finished): (Vec<_>, Vec<_>) = jobs(&snapshot)
                .into_iter()
                .filter(|job| job.state != JobState::InProgress)
                .partition(|job| job.state == JobState::Pending);
            progressed |= self.prune_finished_jobs(&finished, now).await;
            pending.sort_by(|a, b| a.scheduled_time.total_cmp(&b.scheduled_time));
            let next_due = pending.iter().find(|job| job.scheduled_time > now).map(|job| job.scheduled_time);
            for job in pending.into_iter().take_while(|job| job.scheduled_time <= now) {
                // A long backlog must not hold up a stop: look between jobs.
                if !matches!(stopped.try_recv(), Err(oneshot::error::TryRecvError::Empty)) {
                    break 'schedule;
                }
                let kind = FunctionPath::parse(&job.name).ok().and_then(|path| self.function_kind(&path));
                if kind == Some(FunctionKind::Action) {
                    if actions.len() < MAX_RUNNING_SCHEDULED_ACTIONS {
                        progressed |= self.start_action_job(job, &mut actions, &mut running).await;
                    }
                } else {
                    // Mutations, and jobs that can't run: the attempt records why.
                    progressed |= self.run_mutation_job(job).await;
                }
            }
            if progressed {
                continue;
            }
            // A cron still due here failed to fire (logged): a change, not the clock, may unblock it.
            let next_cron = snapshot
                .documents(CRON_JOBS_TABLE)
                .iter()
                .map(|document| next_run_of(document))
                .filter(|next_run| *next_run > now)
                .reduce(f64::min);
            let wake_at = [next_due, next_cron, next_prune(&finished)].into_iter().flatten().reduce(f64::min);
            let timer = async {
                match wake_at {
                    Some(at) => tokio::time::sleep(Duration::from_secs_f64(((at - now) / 1_000.0).max(0.0))).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                _ = &mut stopped => break 'schedule,
                Some(joined) = actions.join_next_with_id(), if !actions.is_empty() => {
                    self.action_task_ended(joined, &mut running).await;
                }
                () = self.scheduling_change(&mut changes) => {}
                () = timer => {}
            }
        }
        actions.shutdown().await;
    }

    /// Returns once a commit touched the scheduler's tables (or the stream lagged, so one may have).
    async fn scheduling_change(&self, changes: &mut broadcast::Receiver<Arc<CommitRecord>>) {
        loop {
            match changes.recv().await {
                Ok(record) => {
                    let snapshot = self.store().snapshot();
                    let ours = |change: &livebase_store::DocumentChange| {
                        matches!(
                            snapshot.table_name(change.id.table()),
                            Some(SCHEDULED_FUNCTIONS_TABLE | CRON_JOBS_TABLE)
                        )
                    };
                    if record.changes.iter().any(ours) {
                        return;
                    }
                }
                Err(broadcast::error::RecvError::Lagged(_)) => return,
                // The store is shutting down: nothing will change any more.
                Err(broadcast::error::RecvError::Closed) => std::future::pending().await,
            }
        }
    }

    async fn fire_due_crons(&self, snapshot: &Snapshot, now: f64) -> bool {
        let mut fired = false;
        for document in snapshot.documents(CRON_JOBS_TABLE) {
            if next_run_of(&document) > now {
                continue;
            }
            let Some(Value::String(name)) = document.get(NAME) else { panic!("cron rows have a name") };
            let registry = self.registry();
            // A row the registry has no cron for: `replace_registry` synced the rows before swapping
            // the registry in, and this snapshot is older than the sync.
            let Some(cron) = registry.crons().get(name) else { continue };
            let result = self.store().transact(|tx| Ok(fire_cron(tx, cron, document.id(), now))).await;
            match result.map_err(FunctionError::from).and_then(|(result, _)| result) {
                Ok(()) => fired = true,
                Err(error) => tracing::error!(cron = %name, "the cron could not be scheduled: {error}"),
            }
        }
        fired
    }

    /// Deletes jobs finished longer than `FINISHED_JOB_RETENTION` ago, one bounded batch; `true`
    /// when it deleted some (more may remain).
    async fn prune_finished_jobs(&self, finished: &[ScheduledJob], now: f64) -> bool {
        if next_prune(finished).is_none_or(|due| due > now) {
            return false;
        }
        match self.store().transact(|tx| prune_finished(tx, finished, now)).await {
            Ok((pruned, _)) => pruned > 0,
            Err(error) => {
                tracing::error!("could not delete old finished jobs: {error}");
                false
            }
        }
    }

    /// Runs a mutation's job; `false` when its end could not be recorded (the store is down), so the
    /// loop waits for a change rather than trying again at once.
    async fn run_mutation_job(&self, job: ScheduledJob) -> bool {
        let caller = Caller::outside(&Identity::System);
        let outcome = self.call_mutation(&job.name, job.args, &caller, RunOnce::Job(job.id)).await;
        // A run that committed settled its job; one that never got to commit (bad path or arguments,
        // conflicts past every retry) fails it here, unless it was canceled meanwhile.
        self.settle_job(job.id, JobState::Pending, &outcome.result).await
    }

    /// Moves an action's job to `inProgress` and starts it; `false` when the job was no longer pending.
    async fn start_action_job(
        &self,
        job: ScheduledJob,
        actions: &mut JoinSet<()>,
        running: &mut HashMap<tokio::task::Id, DocumentId>,
    ) -> bool {
        let claimed = self
            .store()
            .transact(|tx| {
                let Some(document) = tx.get(job.id)? else { return Ok(false) };
                if ScheduledJob::from_document(&document).state != JobState::Pending {
                    return Ok(false);
                }
                set_state(tx, job.id, JobState::InProgress, now_millis(), None)?;
                Ok(true)
            })
            .await;
        match claimed {
            Ok((true, _)) => {}
            Ok((false, _)) => return false,
            Err(error) => {
                tracing::error!(job = %job.id.encode(), "could not start the scheduled action: {error}");
                return false;
            }
        }
        let runtime = self.clone();
        let id = job.id;
        // Run in this task, not one more: the scheduler's `JoinSet` isolates panics, and stopping the
        // scheduler then stops the action with it.
        let task = actions.spawn(async move {
            let outcome = runtime.call_action_here(&job.name, job.args, Caller::outside(&Identity::System)).await;
            runtime.settle_job(id, JobState::InProgress, &outcome.result).await;
        });
        running.insert(task.id(), id);
        true
    }

    async fn action_task_ended(
        &self,
        joined: Result<(tokio::task::Id, ()), JoinError>,
        running: &mut HashMap<tokio::task::Id, DocumentId>,
    ) {
        let task = match &joined {
            Ok((task, ())) => *task,
            Err(error) => error.id(),
        };
        let job = running.remove(&task).expect("every action task is recorded when spawned");
        if let Err(error) = joined {
            let error = FunctionError::internal(format!("The scheduled action stopped: {error}"));
            self.settle_job(job, JobState::InProgress, &Err(error)).await;
        }
    }

    /// Settles a job that is still `expected`; `false` when that could not be committed.
    async fn settle_job(&self, id: DocumentId, expected: JobState, result: &Result<Value, FunctionError>) -> bool {
        let settled = self.store().transact(|tx| settle(tx, id, expected, result, now_millis())).await;
        if let Err(error) = &settled {
            tracing::error!(job = %id.encode(), "could not record the end of a scheduled job: {error}");
        }
        settled.is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cron(schedule: CronSchedule) -> Cron {
        Cron::new("test", schedule, "jobs:run", Object::new()).expect("a valid cron")
    }

    #[test]
    fn finished_jobs_are_pruned_after_their_retention_in_bounded_batches() {
        let directory = tempfile::tempdir().unwrap();
        let store = livebase_store::Store::open(livebase_store::StoreConfig::new(directory.path())).unwrap();
        let retention = FINISHED_JOB_RETENTION.as_secs_f64() * 1_000.0;
        let finished_at = 1_000_000.0;
        let old_count = MAX_JOBS_PRUNED_PER_COMMIT + 1;
        let (recent, _) = store
            .transact_blocking(|tx| {
                for _ in 0..old_count {
                    let id = schedule(tx, "jobs:run", Object::new(), finished_at, finished_at).unwrap();
                    set_state(tx, id, JobState::Success, finished_at, None)?;
                }
                let pending = schedule(tx, "jobs:run", Object::new(), finished_at, finished_at).unwrap();
                let recent = schedule(tx, "jobs:run", Object::new(), finished_at, finished_at).unwrap();
                set_state(tx, recent, JobState::Canceled, finished_at + 1.0, None)?;
                Ok((pending, recent))
            })
            .unwrap();
        let (pending, recent) = recent;
        let finished = |store: &livebase_store::Store| -> Vec<ScheduledJob> {
            jobs(&store.snapshot()).into_iter().filter(|job| job.state.is_finished()).collect()
        };
        assert_eq!(next_prune(&finished(&store)), Some(finished_at + retention));

        // At the retention's end exactly nothing goes; just after, one bounded batch.
        let (pruned, _) =
            store.transact_blocking(|tx| prune_finished(tx, &finished(&store), finished_at + retention)).unwrap();
        assert_eq!(pruned, 0);
        let now = finished_at + retention + 0.5;
        let (pruned, _) = store.transact_blocking(|tx| prune_finished(tx, &finished(&store), now)).unwrap();
        assert_eq!(pruned, MAX_JOBS_PRUNED_PER_COMMIT);
        let (pruned, _) = store.transact_blocking(|tx| prune_finished(tx, &finished(&store), now)).unwrap();
        assert_eq!(pruned, 1);
        let left: Vec<_> = jobs(&store.snapshot()).into_iter().map(|job| job.id).collect();
        assert_eq!(left, vec![pending, recent], "pending jobs and recently finished ones stay");
    }

    #[test]
    fn intervals_keep_their_phase_and_collapse_missed_runs_into_one() {
        let every_second = cron(CronSchedule::Every(Duration::from_secs(1)));
        assert_eq!(every_second.next_run(None, 10_500.0), 11_500.0, "first run one interval after declaring");
        assert_eq!(every_second.next_run(Some(11_500.0), 11_600.0), 12_500.0, "run on time: the next interval");
        assert_eq!(every_second.next_run(Some(11_500.0), 15_700.0), 16_500.0, "late: the next slot still ahead");
        assert_eq!(every_second.next_run(Some(11_500.0), 16_500.0), 17_500.0, "never `now` itself");
    }

    #[test]
    fn expressions_run_at_their_next_match_in_utc() {
        // 2026-01-01T00:00:00Z and an hour later.
        let new_year = 1_767_225_600_000.0;
        let hourly = cron(CronSchedule::Expression("0 * * * *".into()));
        assert_eq!(hourly.next_run(None, new_year), new_year + 3_600_000.0);
        assert_eq!(hourly.next_run(Some(new_year), new_year + 1.0), new_year + 3_600_000.0);
        let every_ten_seconds = cron(CronSchedule::Expression("*/10 * * * * *".into()));
        assert_eq!(every_ten_seconds.next_run(None, new_year + 12_345.0), new_year + 20_000.0);
    }
}
