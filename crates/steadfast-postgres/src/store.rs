//! [`PostgresCheckpointStore`] and its queries.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use steadfast::checkpoint::{
    CheckpointStore, Claim, Retention, StepKey, StepRecord, StepStatus, StoreError, StoreFuture,
    StoredAnswer, WorkflowState, WorkflowStatus, WorkflowSummary, check_workflow,
};
use tokio_postgres::{Client, NoTls, Row};

/// The PostgreSQL checkpoint store could not do what was asked.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PostgresError {
    /// The schema name is not a plain lower-case identifier.
    #[error(
        "invalid schema name `{0}`: use 1 to 63 characters of a-z, 0-9 and _, starting with a letter or _"
    )]
    InvalidSchema(String),
    /// Could not connect.
    #[error("cannot connect to PostgreSQL for checkpoints: {0}")]
    Connect(#[source] tokio_postgres::Error),
    /// A query failed (connection lost, permission denied, ...).
    #[error("PostgreSQL checkpoint store failed while {action}: {source}")]
    Query {
        /// What the store was doing.
        action: &'static str,
        /// The driver's error.
        #[source]
        source: tokio_postgres::Error,
    },
}

/// Workflow checkpoints in PostgreSQL; see the [crate docs](crate). Cheap to clone: clones
/// share one connection (queries are pipelined on it).
#[derive(Clone)]
pub struct PostgresCheckpointStore {
    inner: Arc<Inner>,
}

struct Inner {
    client: Client,
    schema: String,
    sql: Queries,
}

impl std::fmt::Debug for PostgresCheckpointStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresCheckpointStore")
            .field("schema", &self.inner.schema)
            .finish_non_exhaustive()
    }
}

/// The store's statements, with the schema name in them.
struct Queries {
    claim: String,
    look: String,
    renew: String,
    complete: String,
    release: String,
    save: String,
    summaries: String,
    state: String,
    steps: String,
    answer: String,
    finish: String,
    interrupt: String,
    forget: String,
    prune: String,
}

impl Queries {
    fn new(s: &str) -> Self {
        let summaries = format!(
            "SELECT w.workflow, w.status, w.phase, w.interrupted, w.created_at, w.updated_at,
                    (SELECT count(*) FROM {s}.steps t WHERE t.workflow = w.workflow AND t.status = 'done'),
                    (SELECT count(*) FROM {s}.steps t WHERE t.workflow = w.workflow AND t.status = 'running')
             FROM {s}.workflows w WHERE ($1::text IS NULL OR w.workflow = $1)
             ORDER BY w.updated_at DESC, w.workflow"
        );
        Queries {
            claim: format!(
                "WITH touched AS (
                   INSERT INTO {s}.workflows (workflow, created_at, updated_at)
                   VALUES ($1, clock_timestamp(), clock_timestamp())
                   ON CONFLICT (workflow) DO UPDATE SET updated_at = excluded.updated_at
                   RETURNING 1
                 ), claimed AS (
                   INSERT INTO {s}.steps (workflow, step, status, owner, lease_until, started_at)
                   VALUES ($1, $2, 'running', $3, clock_timestamp() + $4::bigint * interval '1 millisecond', clock_timestamp())
                   ON CONFLICT (workflow, step) DO UPDATE
                     SET owner = excluded.owner, lease_until = excluded.lease_until
                     WHERE {s}.steps.status = 'running'
                       AND ({s}.steps.owner IS NULL OR {s}.steps.lease_until <= clock_timestamp())
                   RETURNING 1
                 )
                 SELECT (SELECT count(*) FROM claimed), (SELECT count(*) FROM touched)"
            ),
            look: format!(
                "SELECT status, response, completed_at,
                        greatest(0, extract(epoch FROM lease_until - clock_timestamp()) * 1000)::float8
                 FROM {s}.steps WHERE workflow = $1 AND step = $2"
            ),
            renew: format!(
                "UPDATE {s}.steps SET lease_until = clock_timestamp() + $4::bigint * interval '1 millisecond'
                 WHERE workflow = $1 AND step = $2 AND owner = $3 AND status = 'running'"
            ),
            complete: format!(
                "WITH done AS (
                   UPDATE {s}.steps SET status = 'done', response = $4, completed_at = clock_timestamp(),
                                        owner = NULL, lease_until = NULL
                   WHERE workflow = $1 AND step = $2 AND owner = $3 AND status = 'running'
                   RETURNING workflow
                 ), touched AS (
                   UPDATE {s}.workflows SET updated_at = clock_timestamp()
                   WHERE workflow IN (SELECT workflow FROM done)
                 )
                 SELECT count(*) FROM done"
            ),
            release: format!(
                "DELETE FROM {s}.steps WHERE workflow = $1 AND step = $2 AND owner = $3 AND status = 'running'"
            ),
            save: format!(
                "INSERT INTO {s}.workflows (workflow, phase, state, created_at, updated_at)
                 VALUES ($1, $2, $3, clock_timestamp(), clock_timestamp())
                 ON CONFLICT (workflow) DO UPDATE
                   SET phase = excluded.phase, state = excluded.state, updated_at = excluded.updated_at"
            ),
            summaries,
            state: format!("SELECT state FROM {s}.workflows WHERE workflow = $1"),
            steps: format!(
                "SELECT step, status, coalesce(octet_length(response), 0)::bigint, started_at, completed_at
                 FROM {s}.steps WHERE workflow = $1 ORDER BY started_at, step"
            ),
            answer: format!(
                "SELECT response, completed_at FROM {s}.steps
                 WHERE workflow = $1 AND step = $2 AND status = 'done'"
            ),
            finish: format!(
                "UPDATE {s}.workflows SET status = 'finished', updated_at = clock_timestamp() WHERE workflow = $1"
            ),
            interrupt: format!(
                "UPDATE {s}.workflows SET interrupted = $2, updated_at = clock_timestamp() WHERE workflow = $1"
            ),
            forget: format!(
                "WITH gone AS (DELETE FROM {s}.workflows WHERE workflow = $1 RETURNING workflow),
                      steps AS (DELETE FROM {s}.steps WHERE workflow = $1)
                 SELECT count(*) FROM gone"
            ),
            prune: format!(
                "WITH ranked AS (
                   SELECT workflow, updated_at,
                          row_number() OVER (ORDER BY updated_at DESC, workflow) AS rank
                   FROM {s}.workflows
                 ), doomed AS (
                   SELECT workflow FROM ranked
                   WHERE rank > $1 OR ($2::bigint IS NOT NULL
                                       AND updated_at < clock_timestamp() - $2::bigint * interval '1 millisecond')
                 ), steps AS (
                   DELETE FROM {s}.steps WHERE workflow IN (SELECT workflow FROM doomed)
                 ), gone AS (
                   DELETE FROM {s}.workflows WHERE workflow IN (SELECT workflow FROM doomed) RETURNING 1
                 )
                 SELECT count(*) FROM gone"
            ),
        }
    }
}

fn schema_sql(s: &str) -> String {
    format!(
        "CREATE SCHEMA IF NOT EXISTS {s};
         CREATE TABLE IF NOT EXISTS {s}.workflows (
             workflow    text        PRIMARY KEY,
             status      text        NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'finished')),
             phase       text,
             state       bytea,
             interrupted text,
             created_at  timestamptz NOT NULL,
             updated_at  timestamptz NOT NULL
         );
         CREATE INDEX IF NOT EXISTS workflows_by_updated_at ON {s}.workflows (updated_at);
         CREATE TABLE IF NOT EXISTS {s}.steps (
             workflow     text        NOT NULL,
             step         text        NOT NULL,
             status       text        NOT NULL CHECK (status IN ('running', 'done')),
             owner        text,
             lease_until  timestamptz,
             response     bytea,
             started_at   timestamptz NOT NULL,
             completed_at timestamptz,
             PRIMARY KEY (workflow, step)
         );"
    )
}

fn valid_schema(schema: &str) -> bool {
    let mut chars = schema.chars();
    schema.len() <= 63
        && chars
            .next()
            .is_some_and(|c| c.is_ascii_lowercase() || c == '_')
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

fn lease_ms(lease: Duration) -> i64 {
    i64::try_from(lease.as_millis()).unwrap_or(i64::MAX / 4)
}

fn query_error(action: &'static str) -> impl Fn(tokio_postgres::Error) -> StoreError {
    move |source| StoreError::backend(PostgresError::Query { action, source })
}

fn summary(row: &Row) -> WorkflowSummary {
    let status: String = row.get(1);
    WorkflowSummary {
        workflow: row.get(0),
        status: if status == "finished" {
            WorkflowStatus::Finished
        } else {
            WorkflowStatus::Open
        },
        phase: row.get(2),
        interrupted: row.get(3),
        created_at: row.get(4),
        updated_at: row.get(5),
        steps_done: u64::try_from(row.get::<_, i64>(6)).unwrap_or(0),
        steps_running: u64::try_from(row.get::<_, i64>(7)).unwrap_or(0),
    }
}

fn not_found(workflow: &str) -> StoreError {
    StoreError::NotFound {
        workflow: workflow.to_owned(),
    }
}

impl PostgresCheckpointStore {
    /// Connects to `url` (`postgres://user@host:port/db`) and creates the schema `schema` and
    /// its tables if missing. The connection runs on a task of the current tokio runtime.
    pub async fn connect(url: &str, schema: &str) -> Result<Self, PostgresError> {
        if !valid_schema(schema) {
            return Err(PostgresError::InvalidSchema(schema.to_owned()));
        }
        let (mut client, connection) = tokio_postgres::connect(url, NoTls)
            .await
            .map_err(PostgresError::Connect)?;
        tokio::spawn(async move {
            if let Err(error) = connection.await {
                tracing::error!(%error, "PostgreSQL checkpoint store connection lost");
            }
        });
        let migrate = |source| PostgresError::Query {
            action: "creating the checkpoint schema",
            source,
        };
        // Replicas starting together must not race on CREATE ... IF NOT EXISTS (it can fail
        // with a duplicate-type error): one at a time, under a transaction-scoped lock.
        let tx = client.transaction().await.map_err(migrate)?;
        tx.execute(
            "SELECT pg_advisory_xact_lock(hashtext($1))",
            &[&format!("steadfast-checkpoints-{schema}")],
        )
        .await
        .map_err(migrate)?;
        tx.batch_execute(&schema_sql(schema))
            .await
            .map_err(migrate)?;
        tx.commit().await.map_err(migrate)?;
        Ok(PostgresCheckpointStore {
            inner: Arc::new(Inner {
                client,
                schema: schema.to_owned(),
                sql: Queries::new(schema),
            }),
        })
    }

    /// The schema holding the tables.
    pub fn schema(&self) -> &str {
        &self.inner.schema
    }

    /// Drops the schema and everything in it (tests, teardown).
    pub async fn drop_schema(&self) -> Result<(), PostgresError> {
        self.inner
            .client
            .batch_execute(&format!(
                "DROP SCHEMA IF EXISTS {} CASCADE",
                self.inner.schema
            ))
            .await
            .map_err(|source| PostgresError::Query {
                action: "dropping the checkpoint schema",
                source,
            })
    }
}

impl CheckpointStore for PostgresCheckpointStore {
    fn claim<'a>(
        &'a self,
        key: &'a StepKey,
        owner: &'a str,
        lease: Duration,
    ) -> StoreFuture<'a, Claim> {
        Box::pin(async move {
            let client = &self.inner.client;
            let lease = lease_ms(lease);
            // A completed step is answered by a read alone (no row is written on a hit).
            if let Some(answer) = self.answer(key).await? {
                return Ok(Claim::Done(answer));
            }
            // A row released between our claim and our look is gone: claim again.
            for _ in 0..3 {
                let row = client
                    .query_one(
                        &self.inner.sql.claim,
                        &[&key.workflow(), &key.step(), &owner, &lease],
                    )
                    .await
                    .map_err(query_error("claiming a step"))?;
                if row.get::<_, i64>(0) == 1 {
                    return Ok(Claim::Claimed);
                }
                let Some(row) = client
                    .query_opt(&self.inner.sql.look, &[&key.workflow(), &key.step()])
                    .await
                    .map_err(query_error("reading a step"))?
                else {
                    continue;
                };
                let status: String = row.get(0);
                if status == "done" {
                    return Ok(Claim::Done(StoredAnswer {
                        response: row.get::<_, Option<Vec<u8>>>(1).unwrap_or_default(),
                        completed_at: row
                            .get::<_, Option<SystemTime>>(2)
                            .unwrap_or_else(SystemTime::now),
                    }));
                }
                let remaining_ms = row.get::<_, Option<f64>>(3).unwrap_or(0.0);
                return Ok(Claim::Busy {
                    lease_remaining: Duration::from_secs_f64(
                        (remaining_ms / 1000.0).clamp(0.0, 1e9),
                    ),
                });
            }
            Ok(Claim::Busy {
                lease_remaining: Duration::ZERO,
            })
        })
    }

    fn renew<'a>(
        &'a self,
        key: &'a StepKey,
        owner: &'a str,
        lease: Duration,
    ) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            let changed = self
                .inner
                .client
                .execute(
                    &self.inner.sql.renew,
                    &[&key.workflow(), &key.step(), &owner, &lease_ms(lease)],
                )
                .await
                .map_err(query_error("renewing a lease"))?;
            if changed == 0 {
                return Err(StoreError::LeaseLost { key: key.clone() });
            }
            Ok(())
        })
    }

    fn complete<'a>(
        &'a self,
        key: &'a StepKey,
        owner: &'a str,
        response: Vec<u8>,
    ) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            let row = self
                .inner
                .client
                .query_one(
                    &self.inner.sql.complete,
                    &[&key.workflow(), &key.step(), &owner, &response],
                )
                .await
                .map_err(query_error("storing a step's answer"))?;
            if row.get::<_, i64>(0) == 0 {
                return Err(StoreError::LeaseLost { key: key.clone() });
            }
            Ok(())
        })
    }

    fn release<'a>(&'a self, key: &'a StepKey, owner: &'a str) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            self.inner
                .client
                .execute(
                    &self.inner.sql.release,
                    &[&key.workflow(), &key.step(), &owner],
                )
                .await
                .map_err(query_error("releasing a step"))?;
            Ok(())
        })
    }

    fn save<'a>(
        &'a self,
        workflow: &'a str,
        phase: &'a str,
        state: Vec<u8>,
    ) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            check_workflow(workflow)?;
            self.inner
                .client
                .execute(&self.inner.sql.save, &[&workflow, &phase, &state])
                .await
                .map_err(query_error("saving workflow state"))?;
            Ok(())
        })
    }

    fn resume<'a>(&'a self, workflow: &'a str) -> StoreFuture<'a, WorkflowState> {
        Box::pin(async move {
            let client = &self.inner.client;
            let read = query_error("reading a workflow");
            let Some(row) = client
                .query_opt(&self.inner.sql.summaries, &[&Some(workflow)])
                .await
                .map_err(&read)?
            else {
                return Err(not_found(workflow));
            };
            let summary = summary(&row);
            let state: Option<Vec<u8>> = client
                .query_one(&self.inner.sql.state, &[&workflow])
                .await
                .map_err(&read)?
                .get(0);
            let steps = client
                .query(&self.inner.sql.steps, &[&workflow])
                .await
                .map_err(&read)?
                .iter()
                .map(|row| StepRecord {
                    step: row.get(0),
                    status: if row.get::<_, String>(1) == "done" {
                        StepStatus::Done
                    } else {
                        StepStatus::Running
                    },
                    response_len: u64::try_from(row.get::<_, i64>(2)).unwrap_or(0),
                    started_at: row.get(3),
                    completed_at: row.get(4),
                })
                .collect();
            Ok(WorkflowState {
                summary,
                state,
                steps,
            })
        })
    }

    fn answer<'a>(&'a self, key: &'a StepKey) -> StoreFuture<'a, Option<StoredAnswer>> {
        Box::pin(async move {
            let row = self
                .inner
                .client
                .query_opt(&self.inner.sql.answer, &[&key.workflow(), &key.step()])
                .await
                .map_err(query_error("reading a step's answer"))?;
            Ok(row.map(|row| StoredAnswer {
                response: row.get::<_, Option<Vec<u8>>>(0).unwrap_or_default(),
                completed_at: row
                    .get::<_, Option<SystemTime>>(1)
                    .unwrap_or_else(SystemTime::now),
            }))
        })
    }

    fn list(&self) -> StoreFuture<'_, Vec<WorkflowSummary>> {
        Box::pin(async move {
            let none: Option<&str> = None;
            Ok(self
                .inner
                .client
                .query(&self.inner.sql.summaries, &[&none])
                .await
                .map_err(query_error("listing workflows"))?
                .iter()
                .map(summary)
                .collect())
        })
    }

    fn finish<'a>(&'a self, workflow: &'a str) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            let changed = self
                .inner
                .client
                .execute(&self.inner.sql.finish, &[&workflow])
                .await
                .map_err(query_error("finishing a workflow"))?;
            if changed == 0 {
                return Err(not_found(workflow));
            }
            Ok(())
        })
    }

    fn interrupt<'a>(&'a self, workflow: &'a str, reason: &'a str) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            let changed = self
                .inner
                .client
                .execute(&self.inner.sql.interrupt, &[&workflow, &reason])
                .await
                .map_err(query_error("marking a workflow interrupted"))?;
            if changed == 0 {
                return Err(not_found(workflow));
            }
            Ok(())
        })
    }

    fn forget<'a>(&'a self, workflow: &'a str) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            let row = self
                .inner
                .client
                .query_one(&self.inner.sql.forget, &[&workflow])
                .await
                .map_err(query_error("forgetting a workflow"))?;
            if row.get::<_, i64>(0) == 0 {
                return Err(not_found(workflow));
            }
            Ok(())
        })
    }

    fn prune(&self, retention: Retention) -> StoreFuture<'_, u64> {
        Box::pin(async move {
            let keep = retention
                .max_workflows
                .map_or(i64::MAX, |n| i64::try_from(n).unwrap_or(i64::MAX));
            let max_age = retention.max_age.map(lease_ms);
            let row = self
                .inner
                .client
                .query_one(&self.inner.sql.prune, &[&keep, &max_age])
                .await
                .map_err(query_error("pruning workflows"))?;
            Ok(u64::try_from(row.get::<_, i64>(0)).unwrap_or(0))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::valid_schema;

    #[test]
    fn schema_names_are_plain_identifiers() {
        assert!(valid_schema("steadfast"));
        assert!(valid_schema("_t1"));
        for bad in ["", "1a", "A", "a;drop", "a b", &"x".repeat(64)] {
            assert!(!valid_schema(bad), "{bad}");
        }
    }
}
