//! [`StackBuilder`]: a [`StackConfig`] plus what only the application can supply (the agents'
//! services, its classifiers, dead-letter stores, a cache key) becomes one service per agent.

use std::fmt;
use std::hash::Hash;
use std::sync::Arc;

use bytes::Bytes;
use tower::ServiceExt;
use tower::util::BoxCloneSyncService;
use tower_layer::Layer;
use tower_service::Service;

use crate::agent::Agent;
use crate::bulkhead::{BulkheadHandle, BulkheadLayer};
use crate::cache::{CacheConfig, CacheTier, ResponseCache};
use crate::circuit_breaker::{BreakerHandle, CircuitBreakerLayer, HealthCheck};
use crate::classify::{Classify, DefaultClassifier};
use crate::dead_letter::{DeadLetterLayer, DeadLetterSink, EncodeRequest, MemorySink, Scrub};
use crate::error::BoxError;
use crate::fallback::{Alternative, FallbackLayer};
use crate::hedge::HedgeLayer;
use crate::provenance::{MarkServed, Marked, Unmarked};
use crate::rate_limit::{RateLimitHandle, RateLimitLayer};
use crate::registry::Registry;
use crate::retry::BackoffRetryLayer;

use super::error::{ErrorKind, StackConfigError};
use super::locate::FieldPath;
use super::schema::{AgentConfig, DEFAULT_CLASSIFIER, DeadLetterStore, StackConfig};

/// An agent's service, or a whole stack, type-erased.
pub type BoxAgent<Req, Res> = BoxCloneSyncService<Req, Res, BoxError>;

type AgentFactory<Req, Res> =
    dyn Fn(&AgentConfig) -> Result<BoxAgent<Req, Res>, BoxError> + Send + Sync;
type ClassifierFactory<C> = dyn Fn(&str) -> Option<C> + Send + Sync;
type StoreOpener = dyn Fn(&AgentConfig, &DeadLetterStore) -> Result<Option<Arc<dyn DeadLetterSink>>, BoxError>
    + Send
    + Sync;
type CacheFactory<Req, Res> = dyn Fn(CacheConfig) -> Arc<dyn CacheTier<Req, Res>> + Send + Sync;
type HealthCheckFactory = dyn Fn(&AgentConfig) -> Option<Arc<dyn HealthCheck>> + Send + Sync;
type TokenCostFn<Req> = dyn Fn(&Req) -> u64 + Send + Sync;
type TokenUsageFn<Res> = dyn Fn(&Res) -> Option<u64> + Send + Sync;

/// Builds the stacks a [`StackConfig`] describes. Get one from [`StackConfig::builder`], give
/// it the agents' services ([`agents`](Self::agents)) and whatever else the file asks for,
/// then [`build`](Self::build).
///
/// Every agent gets, outer to inner (DESIGN §1):
///
/// ```text
/// DeadLetter     [agents.NAME.dead_letter]
/// Fallback       fallback = [...] (each alternative through its own rate limit, bulkhead, breaker and timeout), then [agents.NAME.cache]
/// BackoffRetry   [agents.NAME.retry]
/// Hedge          [agents.NAME.hedge] (hedges to `to = [...]`, each through its own rate limit, bulkhead, breaker and timeout; from the retry layer's budget)
/// RateLimit      [agents.NAME.rate_limit] (tokens counted by `token_cost`)
/// Bulkhead       [agents.NAME.bulkhead]
/// CircuitBreaker [agents.NAME.breaker]
/// Timeout        timeout = "..."
/// the agent's service
/// ```
///
/// A layer whose table is absent is left out. An alternative is called through its own rate
/// limit, bulkhead, breaker and timeout only: not through its retries (alternatives are tried
/// once each, so an outage is not multiplied), and not through its own fallback chain (so
/// chains never loop). An agent's quotas and permits are one set, spent by its own callers and
/// by the agents that fall back to it alike: they stand for what the agent can take.
///
/// The rate limit sits outside the bulkhead, so a call waiting for its turn in the quota does
/// not hold one of the agent's concurrency permits meanwhile.
pub struct StackBuilder<Req, Res, C = DefaultClassifier, P = Unmarked> {
    config: StackConfig,
    registry: Registry,
    classifiers: Arc<ClassifierFactory<C>>,
    agents: Option<Arc<AgentFactory<Req, Res>>>,
    stores: Option<Arc<StoreOpener>>,
    encoder: Option<SharedEncoder<Req>>,
    cache: Option<Arc<CacheFactory<Req, Res>>>,
    health_checks: Option<Arc<HealthCheckFactory>>,
    token_cost: Option<Arc<TokenCostFn<Req>>>,
    token_usage: Option<Arc<TokenUsageFn<Res>>>,
    seed: Option<u64>,
    marker: P,
}

impl StackConfig {
    /// A builder of this stack's services, with agents made in `registry` (so its status,
    /// metrics and events see them) and the default classifier (kind `default`).
    pub fn builder<Req, Res>(&self, registry: &Registry) -> StackBuilder<Req, Res> {
        StackBuilder {
            config: self.clone(),
            registry: registry.clone(),
            classifiers: Arc::new(|kind: &str| {
                (kind == DEFAULT_CLASSIFIER).then_some(DefaultClassifier)
            }),
            agents: None,
            stores: None,
            encoder: None,
            cache: None,
            health_checks: None,
            token_cost: None,
            token_usage: None,
            seed: None,
            marker: Unmarked,
        }
    }
}

impl<Req, Res, C, P> StackBuilder<Req, Res, C, P> {
    /// How classifier kinds (`classifier = "..."`) become classifiers: `None` for a kind the
    /// application does not know, which fails the build naming the agent's `classifier` line.
    pub fn classifiers<C2, F>(self, classifiers: F) -> StackBuilder<Req, Res, C2, P>
    where
        F: Fn(&str) -> Option<C2> + Send + Sync + 'static,
    {
        StackBuilder {
            config: self.config,
            registry: self.registry,
            classifiers: Arc::new(classifiers),
            agents: self.agents,
            stores: self.stores,
            encoder: self.encoder,
            cache: self.cache,
            health_checks: self.health_checks,
            token_cost: self.token_cost,
            token_usage: self.token_usage,
            seed: self.seed,
            marker: self.marker,
        }
    }

    /// Makes each agent's service from its config (its name and `endpoint`): a map lookup, or
    /// an HTTP client for the endpoint's URL. Called once per agent.
    #[must_use]
    pub fn agents<S, F>(mut self, factory: F) -> Self
    where
        F: Fn(&AgentConfig) -> Result<S, BoxError> + Send + Sync + 'static,
        S: Service<Req, Response = Res> + Clone + Send + Sync + 'static,
        S::Error: Into<BoxError>,
        S::Future: Send + 'static,
        Req: 'static,
    {
        self.agents = Some(Arc::new(move |agent: &AgentConfig| {
            factory(agent).map(|service| BoxCloneSyncService::new(service.map_err(Into::into)))
        }));
        self
    }

    /// Opens the dead-letter stores the file names: `sqlite` with
    /// `steadfast_sqlite::SqliteSink`, `amqp` with `steadfast_amqp::AmqpSink`, or any store
    /// the application prefers (a command-line flag that overrides the file). `Ok(None)` leaves
    /// the store to steadfast, which builds only `memory`. Called once per agent with a
    /// `dead_letter` table.
    #[must_use]
    pub fn dead_letter_stores<F>(mut self, opener: F) -> Self
    where
        F: Fn(&AgentConfig, &DeadLetterStore) -> Result<Option<Arc<dyn DeadLetterSink>>, BoxError>
            + Send
            + Sync
            + 'static,
    {
        self.stores = Some(Arc::new(opener));
        self
    }

    /// How requests are encoded into dead letters (required when an agent has a
    /// `dead_letter` table), e.g. `steadfast_http::dead_letter::HttpRequestEncoder`.
    #[must_use]
    pub fn dead_letter_encoder<En>(mut self, encoder: En) -> Self
    where
        En: EncodeRequest<Req> + Send + Sync + 'static,
    {
        self.encoder = Some(SharedEncoder(Arc::new(encoder)));
        self
    }

    /// The cache key of a request (required when an agent has a `cache` table): `None` for
    /// requests that must never be cached.
    #[must_use]
    pub fn cache_key<K, F>(mut self, key: F) -> Self
    where
        F: Fn(&Req) -> Option<K> + Send + Sync + 'static,
        K: Hash + Eq + Clone + Send + Sync + 'static,
        Req: Send + Sync + 'static,
        Res: Clone + Send + Sync + 'static,
    {
        let key = Arc::new(key);
        self.cache = Some(Arc::new(move |config: CacheConfig| {
            let key = key.clone();
            let cache: Arc<dyn CacheTier<Req, Res>> =
                Arc::new(ResponseCache::new(config, move |request: &Req| {
                    key(request)
                }));
            cache
        }));
        self
    }

    /// The health check of an agent's breaker (probed while the breaker is open; see
    /// `CircuitBreakerLayer::health_check`), typically made from the agent's `health_check`
    /// key; `None` for none. Asked for agents with a `breaker` table only.
    #[must_use]
    pub fn health_checks<F>(mut self, checks: F) -> Self
    where
        F: Fn(&AgentConfig) -> Option<Arc<dyn HealthCheck>> + Send + Sync + 'static,
    {
        self.health_checks = Some(Arc::new(checks));
        self
    }

    /// Estimates the tokens of a request (prompt plus the `max_tokens` of the answer), charged
    /// to the `tokens_per_minute` quota of every `rate_limit` table (see
    /// `RateLimitLayer::cost`). Required when a file sets `tokens_per_minute`: without it the
    /// build fails on that line rather than limit nothing.
    #[must_use]
    pub fn token_cost<F>(mut self, cost: F) -> Self
    where
        F: Fn(&Req) -> u64 + Send + Sync + 'static,
    {
        self.token_cost = Some(Arc::new(cost));
        self
    }

    /// Reads the tokens an answer used (its `usage.total_tokens`), correcting the token quota
    /// of every `rate_limit` table by the difference from the estimate (see
    /// `RateLimitLayer::usage`).
    #[must_use]
    pub fn token_usage<F>(mut self, usage: F) -> Self
    where
        F: Fn(&Res) -> Option<u64> + Send + Sync + 'static,
    {
        self.token_usage = Some(Arc::new(usage));
        self
    }

    /// Seeds every retry layer's jitter, so runs repeat (tests, demos).
    #[must_use]
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = Some(seed);
        self
    }

    /// Marks answers from alternatives and caches with their `Served` (see
    /// `FallbackLayer::mark_responses`).
    pub fn mark_responses(self) -> StackBuilder<Req, Res, C, Marked> {
        StackBuilder {
            config: self.config,
            registry: self.registry,
            classifiers: self.classifiers,
            agents: self.agents,
            stores: self.stores,
            encoder: self.encoder,
            cache: self.cache,
            health_checks: self.health_checks,
            token_cost: self.token_cost,
            token_usage: self.token_usage,
            seed: self.seed,
            marker: Marked,
        }
    }
}

/// One agent, built: its scope and the bulkhead-breaker-and-timeout "guard" alternatives
/// call (the whole stack callers use is built over it).
struct Guarded<Req, Res, C> {
    agent: Agent<C>,
    guard: BoxAgent<Req, Res>,
    breaker: Option<BreakerHandle>,
    bulkhead: Option<BulkheadHandle>,
    rate_limit: Option<RateLimitHandle>,
}

impl<Req, Res, C, P> StackBuilder<Req, Res, C, P>
where
    Req: Clone + Send + Sync + 'static,
    Res: Send + Sync + 'static,
    C: Classify<Req, Res> + Clone + Send + Sync + 'static,
    C::Memo: Send + Sync + 'static,
    P: MarkServed<Res> + Clone + Send + Sync + 'static,
{
    /// Builds every agent's stack. Errors name the file, the line and the field of the agent
    /// that could not be built (its `endpoint` when the factory failed, its `classifier` when
    /// the kind is unknown, ...).
    pub fn build(self) -> Result<Stacks<Req, Res, C>, StackConfigError> {
        let Some(factory) = self.agents.clone() else {
            return Err(StackConfigError::new(
                ErrorKind::Build,
                &self.config.source.origin,
                "agents",
                "no agent factory: call `StackBuilder::agents` with what makes each agent's service",
            ));
        };
        let mut guarded = Vec::with_capacity(self.config.agents.len());
        for config in &self.config.agents {
            guarded.push(self.guard(config, factory.as_ref())?);
        }
        let mut built = Vec::with_capacity(guarded.len());
        for (config, own) in self.config.agents.iter().zip(&guarded) {
            built.push(self.stack(config, own, &guarded)?);
        }
        Ok(Stacks { agents: built })
    }

    /// An error about `field` of `agent` (a dotted path below the agent's table; the table
    /// itself when `None`).
    fn fail(&self, agent: &AgentConfig, field: Option<&str>, message: String) -> StackConfigError {
        let at = FieldPath::default().key("agents").key(&agent.name);
        let at = field
            .into_iter()
            .flat_map(|field| field.split('.'))
            .fold(at, |path, key| path.key(key));
        self.config.source.error(ErrorKind::Build, &at, message)
    }

    /// The agent's scope, and its service behind its rate limit, bulkhead, breaker and timeout.
    fn guard(
        &self,
        config: &AgentConfig,
        factory: &AgentFactory<Req, Res>,
    ) -> Result<Guarded<Req, Res, C>, StackConfigError> {
        let Some(classifier) = (self.classifiers)(&config.classifier) else {
            return Err(self.fail(
                config,
                Some("classifier"),
                format!("unknown classifier kind `{}`", config.classifier),
            ));
        };
        let agent = self
            .registry
            .agent(config.name.as_str())
            .classifier(classifier);
        let service = factory(config).map_err(|error| {
            let field = config.endpoint.as_ref().map(|_| "endpoint");
            self.fail(
                config,
                field,
                format!("cannot make agent `{}`: {error}", config.name),
            )
            .with_source(error)
        })?;
        let (mut guard, breaker) = match &config.breaker {
            None => (with_timeout(config, service), None),
            Some(breaker_config) => {
                let layer = CircuitBreakerLayer::new(&agent, breaker_config.clone());
                if let Some(check) = self
                    .health_checks
                    .as_ref()
                    .and_then(|checks| checks(config))
                {
                    layer.set_health_check(check);
                }
                (
                    with_timeout(config, layer.layer(service)),
                    Some(layer.handle()),
                )
            }
        };
        let mut bulkhead = None;
        if let Some(bulkhead_config) = &config.bulkhead {
            // Outside the breaker (DESIGN §1): a call refused for want of a permit never reaches
            // it, and the breaker ignores such local refusals anyway.
            let layer = BulkheadLayer::new(&agent, bulkhead_config.clone());
            bulkhead = Some(layer.handle());
            guard = BoxCloneSyncService::new(layer.layer(guard));
        }
        let mut rate_limit = None;
        if let Some(quotas) = &config.rate_limit {
            if quotas.tokens_per_minute().is_some() && self.token_cost.is_none() {
                return Err(self.fail(
                    config,
                    Some("rate_limit.tokens_per_minute"),
                    "a token quota needs a cost function (what a request's tokens are is code): call `StackBuilder::token_cost`, or limit requests_per_minute only".into(),
                ));
            }
            let layer = RateLimitLayer::new(&agent, quotas.clone());
            rate_limit = Some(layer.handle());
            let cost = self.token_cost.clone();
            let usage = self.token_usage.clone();
            let layer = layer
                .cost(move |request: &Req| cost.as_ref().map_or(0, |cost| cost(request)))
                .usage(move |response: &Res| usage.as_ref().and_then(|usage| usage(response)));
            guard = BoxCloneSyncService::new(layer.layer(guard));
        }
        Ok(Guarded {
            agent,
            guard,
            breaker,
            bulkhead,
            rate_limit,
        })
    }

    /// The whole stack of one agent, over its guard.
    fn stack(
        &self,
        config: &AgentConfig,
        own: &Guarded<Req, Res, C>,
        guarded: &[Guarded<Req, Res, C>],
    ) -> Result<BuiltAgent<Req, Res, C>, StackConfigError> {
        let mut stack = own.guard.clone();
        let retry = config.retry.as_ref().map(|retry| {
            let layer = BackoffRetryLayer::new(&own.agent, retry.clone());
            match self.seed {
                Some(seed) => layer.seed(seed),
                None => layer,
            }
        });
        if let Some(hedge) = &config.hedge {
            let mut layer = HedgeLayer::new(&own.agent, hedge.clone());
            if let Some(retry) = &retry {
                // Hedges and retries together stay within one share of the load.
                layer = layer.budget(retry.retry_budget());
            }
            stack = match self.hedge_targets(config, guarded)?.split_first() {
                None => BoxCloneSyncService::new(layer.layer(stack)),
                Some((first, rest)) => {
                    let mut layer = layer.to(&first.agent, first.guard.clone());
                    for target in rest {
                        layer = layer.to(&target.agent, target.guard.clone());
                    }
                    BoxCloneSyncService::new(layer.layer(stack))
                }
            };
        }
        if let Some(layer) = retry {
            stack = BoxCloneSyncService::new(layer.layer(stack));
        }
        if !config.fallback.is_empty() || config.cache.is_some() {
            stack = BoxCloneSyncService::new(self.fallback(config, own, guarded)?.layer(stack));
        }
        let mut sink = None;
        if let Some(dead_letter) = &config.dead_letter {
            let store = self.open_store(config, &dead_letter.store)?;
            let Some(encoder) = &self.encoder else {
                return Err(self.fail(
                    config,
                    Some("dead_letter"),
                    "dead letters need an encoder: call `StackBuilder::dead_letter_encoder`".into(),
                ));
            };
            let layer = DeadLetterLayer::from_arc(&own.agent, store.clone())
                .policy(dead_letter.policy)
                .encoder(encoder.clone());
            stack = BoxCloneSyncService::new(layer.layer(stack));
            sink = Some(store);
        }
        Ok(BuiltAgent {
            config: config.clone(),
            agent: own.agent.clone(),
            service: stack,
            breaker: own.breaker.clone(),
            bulkhead: own.bulkhead.clone(),
            rate_limit: own.rate_limit.clone(),
            dead_letters: sink,
        })
    }

    /// The guards of the agents `hedge.to` names, in order (none: hedges go to the agent
    /// itself).
    fn hedge_targets<'a>(
        &self,
        config: &AgentConfig,
        guarded: &'a [Guarded<Req, Res, C>],
    ) -> Result<Vec<&'a Guarded<Req, Res, C>>, StackConfigError> {
        config
            .hedge_to
            .iter()
            .map(|name| self.guard_of(config, guarded, name, "hedge.to"))
            .collect()
    }

    /// The guard of the agent `name` (one of `config`'s `field`). The names were checked
    /// against the file's agents when it was read; a miss here is still an error naming the
    /// field, never a panic.
    fn guard_of<'a>(
        &self,
        config: &AgentConfig,
        guarded: &'a [Guarded<Req, Res, C>],
        name: &str,
        field: &str,
    ) -> Result<&'a Guarded<Req, Res, C>, StackConfigError> {
        self.config
            .agents
            .iter()
            .zip(guarded)
            .find(|(candidate, _)| candidate.name == name)
            .map(|(_, guard)| guard)
            .ok_or_else(|| self.fail(config, Some(field), format!("no agent `{name}`")))
    }

    /// The agent's fallback chain: the named agents' guards in the file's order, then its cache.
    fn fallback(
        &self,
        config: &AgentConfig,
        own: &Guarded<Req, Res, C>,
        guarded: &[Guarded<Req, Res, C>],
    ) -> Result<FallbackLayer<Req, Res, C, P>, StackConfigError> {
        let mut layer = FallbackLayer::new(&own.agent);
        for name in &config.fallback {
            let alternative = self.guard_of(config, guarded, name, "fallback")?;
            layer = layer.then_alternative(Alternative::new(
                &alternative.agent,
                alternative.guard.clone(),
            ));
        }
        if let Some(cache) = &config.cache {
            let Some(make) = &self.cache else {
                return Err(self.fail(
                    config,
                    Some("cache"),
                    "a cache needs a key: call `StackBuilder::cache_key`".into(),
                ));
            };
            layer = layer.then_cache_tier(make(cache.clone()));
        }
        Ok(layer.with_marker(self.marker.clone()))
    }

    fn open_store(
        &self,
        config: &AgentConfig,
        store: &DeadLetterStore,
    ) -> Result<Arc<dyn DeadLetterSink>, StackConfigError> {
        let opened = match &self.stores {
            Some(open) => open(config, store).map_err(|error| {
                self.fail(
                    config,
                    Some("dead_letter"),
                    format!("cannot open the `{}` store: {error}", store.kind()),
                )
                .with_source(error)
            })?,
            None => None,
        };
        match (opened, store) {
            (Some(sink), _) => Ok(sink),
            (None, DeadLetterStore::Memory { capacity }) => {
                Ok(Arc::new(MemorySink::new(*capacity)))
            }
            (None, _) => Err(self.fail(
                config,
                Some("dead_letter"),
                format!(
                    "no opener for `{}` stores: call `StackBuilder::dead_letter_stores`",
                    store.kind()
                ),
            )),
        }
    }
}

fn with_timeout<S, Req, Res>(config: &AgentConfig, service: S) -> BoxAgent<Req, Res>
where
    S: Service<Req, Response = Res> + Clone + Send + Sync + 'static,
    S::Error: Into<BoxError>,
    S::Future: Send + 'static,
    Req: 'static,
{
    match config.timeout {
        Some(timeout) => BoxCloneSyncService::new(tower::timeout::Timeout::new(service, timeout)),
        None => BoxCloneSyncService::new(service.map_err(Into::into)),
    }
}

/// The services a [`StackBuilder`] built, one per agent.
pub struct Stacks<Req, Res, C = DefaultClassifier> {
    agents: Vec<BuiltAgent<Req, Res, C>>,
}

/// One agent's built stack.
pub struct BuiltAgent<Req, Res, C = DefaultClassifier> {
    config: AgentConfig,
    agent: Agent<C>,
    service: BoxAgent<Req, Res>,
    breaker: Option<BreakerHandle>,
    bulkhead: Option<BulkheadHandle>,
    rate_limit: Option<RateLimitHandle>,
    dead_letters: Option<Arc<dyn DeadLetterSink>>,
}

impl<Req, Res, C> BuiltAgent<Req, Res, C> {
    /// The agent's config, as read.
    pub fn config(&self) -> &AgentConfig {
        &self.config
    }
    /// The agent's scope (for layers the file cannot describe, such as a `DegradeLayer`).
    pub fn agent(&self) -> &Agent<C> {
        &self.agent
    }
    /// The whole stack: call this.
    pub fn service(&self) -> BoxAgent<Req, Res> {
        self.service.clone()
    }
    /// The agent's breaker, if it has one.
    pub fn breaker(&self) -> Option<&BreakerHandle> {
        self.breaker.as_ref()
    }
    /// The agent's bulkhead (its limit, calls in flight, refusals), if it has one.
    pub fn bulkhead(&self) -> Option<&BulkheadHandle> {
        self.bulkhead.as_ref()
    }
    /// The agent's rate limit (quotas left, a pause from outside), if it has one.
    pub fn rate_limit(&self) -> Option<&RateLimitHandle> {
        self.rate_limit.as_ref()
    }
    /// The agent's dead-letter store, if it has one.
    pub fn dead_letters(&self) -> Option<&Arc<dyn DeadLetterSink>> {
        self.dead_letters.as_ref()
    }
}

impl<Req, Res, C> Stacks<Req, Res, C> {
    /// The agent named `name`.
    pub fn get(&self, name: &str) -> Option<&BuiltAgent<Req, Res, C>> {
        self.agents.iter().find(|agent| agent.config.name == name)
    }
    /// The stack of the agent named `name`.
    pub fn service(&self, name: &str) -> Option<BoxAgent<Req, Res>> {
        self.get(name).map(BuiltAgent::service)
    }
    /// Every agent, in the order of the file.
    pub fn iter(&self) -> impl Iterator<Item = &BuiltAgent<Req, Res, C>> {
        self.agents.iter()
    }
}

impl<Req, Res, C> fmt::Debug for Stacks<Req, Res, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list()
            .entries(self.agents.iter().map(|agent| &agent.config.name))
            .finish()
    }
}

impl<Req, Res, C, P> fmt::Debug for StackBuilder<Req, Res, C, P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StackBuilder")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

/// An encoder shared by every agent's dead-letter layer.
struct SharedEncoder<Req>(Arc<dyn EncodeRequest<Req> + Send + Sync>);

impl<Req> Clone for SharedEncoder<Req> {
    fn clone(&self) -> Self {
        SharedEncoder(self.0.clone())
    }
}

impl<Req> EncodeRequest<Req> for SharedEncoder<Req> {
    fn encode(&self, request: &Req) -> Result<Bytes, BoxError> {
        self.0.encode(request)
    }
    fn encode_redacted(&self, request: &Req) -> Result<(Bytes, Box<dyn Scrub>), BoxError> {
        self.0.encode_redacted(request)
    }
}
