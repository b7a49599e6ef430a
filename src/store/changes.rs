//! Change notifications: what waits for the database to change (a pulling
//! agent's long poll, a blocking query on the activity log or a deployment,
//! a deployment waiting for pulling agents) sleeps here and is woken when
//! what it waits for may have changed. No waiter reads the database while
//! nothing happens.
//!
//! Two signals:
//!
//! - **committed**, a counter bumped after every commit that may have
//!   changed the activity log or a deployment's results. Its waiters are
//!   few (operators' blocking queries, a deployment waiting for its pulling
//!   agents), so each re-reads what it waits for at every bump.
//! - **issued**, the log of deployments that issued allowlists, each with
//!   the hosts it issued one to. Its waiters are many (one per pulling
//!   agent), so each wakes, looks in this log in memory whether its host
//!   got anything, and reads the database only then.
//!
//! The signals are given here by this process's own commits, and by
//! others' through [`super::Store::follow_changes`]: PostgreSQL's
//! notifications, or, on SQLite, the WAL-index mark (the CLI is another
//! process), and a rare catch-up that survives a lost notification.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use tokio::sync::watch;

use super::deployments::{DeploymentHost, IssuedVersion};

/// Deployments remembered in the issued log. A waiter that slept through
/// more than this many (it cannot: each wakes at every one, but a slow one
/// might) counts as concerned and reads the database once.
const ISSUED_KEPT: usize = 64;

/// Which hosts a deployment issued allowlists to.
#[derive(Debug, Clone)]
pub enum Issued {
    /// These hosts.
    Hosts(Arc<HashSet<i64>>),
    /// Unknown (a catch-up could not tell): every waiter looks.
    Everyone,
}

impl Issued {
    fn concerns(&self, host: i64) -> bool {
        match self {
            Issued::Hosts(hosts) => hosts.contains(&host),
            Issued::Everyone => true,
        }
    }
}

/// What one entry of the issued log publishes: a deployment's stage (1
/// for a deployment that is not staged).
type Publication = (i64, u32);

#[derive(Debug, Default)]
struct IssuedLog {
    /// `(revision, publication, hosts)`, oldest first.
    entries: VecDeque<(u64, Publication, Issued)>,
    /// The newest deployment published.
    newest: i64,
    /// The allowlists the newest deployment issued, when this process made
    /// it (or began its stages): a woken agent is answered from here,
    /// without reading the database. Only the newest deployment's are kept.
    documents: Option<(i64, Arc<Documents>)>,
}

/// A deployment's allowlists by host.
type Documents = HashMap<i64, Arc<DeploymentHost>>;

/// How long a remembered look is trusted at most, even when nothing was
/// signalled: the bound on what a lost notification can leave stale.
pub const LOOK_KEPT: Duration = Duration::from_secs(300);

/// Looks remembered at most (one per host key that pulls): beyond, all
/// are forgotten and remembered again as agents come.
const LOOKS_KEPT: usize = 200_000;

/// What a pulling agent's look read: the host its key belongs to and the
/// newest allowlist issued to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Look {
    pub host_id: i64,
    pub version: Option<IssuedVersion>,
}

/// Pulling agents' looks by key hash, trusted while no key changes: a
/// renewal of a waiting poll then reads nothing. A deployment does not
/// make them forgotten: the issued log tells which hosts it concerns, and
/// a concerned host's version is taken from the deployment's documents
/// when this process made it (read again otherwise).
#[derive(Debug, Default)]
struct Looks {
    /// Moves at every key change: a look read before it is not remembered.
    stamp: u64,
    /// Key hash → when it was read, what it read, and the issued revision
    /// taken before it read.
    entries: HashMap<String, (Instant, Look, u64)>,
}

/// Taken before a look reads ([`Changes::look_stamp`]): what it read is
/// remembered only if no key changed since, and is checked against the
/// deployments issued since.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LookStamp {
    keys: u64,
    issued: u64,
}

/// The notification hub of one store.
#[derive(Debug)]
pub struct Changes {
    committed: watch::Sender<u64>,
    issued_revision: watch::Sender<u64>,
    issued: Mutex<IssuedLog>,
    looks: Mutex<Looks>,
    /// Deployments of this process committing and not yet published.
    publishing: watch::Sender<usize>,
}

impl Default for Changes {
    fn default() -> Self {
        Self::new()
    }
}

impl Changes {
    pub fn new() -> Self {
        Self {
            committed: watch::Sender::new(0),
            issued_revision: watch::Sender::new(0),
            issued: Mutex::new(IssuedLog::default()),
            looks: Mutex::new(Looks::default()),
            publishing: watch::Sender::new(0),
        }
    }

    /// Taken by a deployment of this process before it commits, dropped
    /// once it published its documents: a catch-up that sees the commit
    /// first waits for it ([`Self::own_published`]), so that the agents
    /// are woken with the documents in memory, not told to read.
    pub fn publishing(self: &Arc<Self>) -> Publishing {
        self.publishing.send_modify(|n| *n += 1);
        Publishing(Arc::clone(self))
    }

    /// Until no deployment of this process is between its commit and its
    /// publication (at most `bound`).
    pub async fn own_published(&self, bound: Duration) {
        let mut receiver = self.publishing.subscribe();
        let _ = tokio::time::timeout(bound, receiver.wait_for(|n| *n == 0)).await;
    }

    fn log(&self) -> std::sync::MutexGuard<'_, IssuedLog> {
        self.issued.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Something was committed that may have changed anything, a key
    /// included: forgets remembered looks and wakes every [`Committed`]
    /// waiter.
    pub fn committed(&self) {
        self.forget_looks();
        self.recorded();
    }

    /// Something was committed that changed no key (a deployment, its
    /// results, agents' fetches, the activity log), or the periodic
    /// catch-up looked: wakes every [`Committed`] waiter and keeps
    /// remembered looks.
    pub fn recorded(&self) {
        self.committed.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// A waiter for commits, to be taken before reading what it waits for.
    pub fn watch_committed(&self) -> Committed {
        Committed(self.committed.subscribe())
    }

    /// Deployment `deployment` issued allowlists to `hosts`: wakes the
    /// waiters of those hosts. Publishing a deployment again does nothing.
    pub fn issued(&self, deployment: i64, hosts: Issued) {
        self.issued_stage(deployment, 1, hosts);
    }

    /// Stage `stage` of deployment `deployment` began: its allowlists to
    /// `hosts` may be fetched. Publishing a stage again does nothing.
    pub fn issued_stage(&self, deployment: i64, stage: u32, hosts: Issued) {
        let mut log = self.log();
        if log
            .entries
            .iter()
            .any(|(_, published, _)| *published == (deployment, stage))
        {
            return;
        }
        let revision = *self.issued_revision.borrow() + 1;
        log.entries
            .push_back((revision, (deployment, stage), hosts));
        while log.entries.len() > ISSUED_KEPT {
            log.entries.pop_front();
        }
        if log
            .documents
            .as_ref()
            .is_some_and(|(held, _)| *held < deployment)
        {
            // A newer deployment than the one whose documents are held
            // (another's: its documents are in the database only).
            log.documents = None;
        }
        log.newest = log.newest.max(deployment);
        // The revision moves while the log is locked: a waiter that sees it
        // finds its entry (and so does a remembered look).
        self.issued_revision.send_replace(revision);
    }

    /// Deployment `deployment`, made by this process, issued these
    /// allowlists (signed, as stored): wakes their hosts' waiters, and
    /// keeps the documents to answer them from memory.
    pub fn issued_documents(&self, deployment: i64, documents: Vec<DeploymentHost>) {
        self.issued_stage_documents(deployment, 1, documents);
    }

    /// Stage `stage` of deployment `deployment`, run by this process,
    /// began with these allowlists: wakes their hosts' waiters, and keeps
    /// the documents with those of the deployment's earlier stages.
    pub fn issued_stage_documents(
        &self,
        deployment: i64,
        stage: u32,
        documents: Vec<DeploymentHost>,
    ) {
        let hosts: HashSet<i64> = documents.iter().map(|d| d.host_id).collect();
        {
            let mut log = self.log();
            if deployment >= log.newest {
                let mut kept: Documents = match &log.documents {
                    Some((held, earlier)) if *held == deployment => (**earlier).clone(),
                    _ => Documents::new(),
                };
                kept.extend(documents.into_iter().map(|d| (d.host_id, Arc::new(d))));
                log.documents = Some((deployment, Arc::new(kept)));
            }
        }
        self.issued_stage(deployment, stage, Issued::Hosts(Arc::new(hosts)));
    }

    /// Whether stage `stage` of `deployment` was published here.
    pub fn stage_published(&self, deployment: i64, stage: u32) -> bool {
        self.log()
            .entries
            .iter()
            .any(|(_, published, _)| *published == (deployment, stage))
    }

    /// The allowlist the newest deployment issued to `host`, when it was
    /// made by this process and issued the host one.
    pub fn issued_document(&self, host: i64) -> Option<Arc<DeploymentHost>> {
        let log = self.log();
        let (deployment, documents) = log.documents.as_ref()?;
        (*deployment == log.newest)
            .then(|| documents.get(&host).cloned())
            .flatten()
    }

    /// The newest deployment published (or taken as known by [`Self::know`]).
    pub fn newest_issued(&self) -> i64 {
        self.log().newest
    }

    /// Takes deployments up to `deployment` as published (at start: those
    /// issued before have no waiters).
    pub fn know(&self, deployment: i64) {
        let mut log = self.log();
        log.newest = log.newest.max(deployment);
    }

    /// A waiter for allowlists issued, to be taken before reading what a
    /// host holds.
    pub fn watch_issued(self: &Arc<Self>) -> IssuedTo {
        let receiver = self.issued_revision.subscribe();
        let seen = *receiver.borrow();
        IssuedTo {
            changes: Arc::clone(self),
            receiver,
            seen,
        }
    }

    /// Whether a deployment published after revision `seen` (up to
    /// `now`) concerns `host`.
    fn concerns(&self, host: i64, seen: u64, now: u64) -> bool {
        let log = self.log();
        match log.entries.front() {
            // Entries after `seen` were dropped: look to be sure.
            Some((oldest, _, _)) if *oldest > seen + 1 => true,
            _ => log
                .entries
                .iter()
                .filter(|(revision, _, _)| *revision > seen && *revision <= now)
                .any(|(_, _, hosts)| hosts.concerns(host)),
        }
    }

    fn remembered(&self) -> std::sync::MutexGuard<'_, Looks> {
        self.looks.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The stamp to take before reading what a pulling agent's look
    /// remembers ([`Self::remember_look`]).
    pub fn look_stamp(&self) -> LookStamp {
        // The issued revision first: a deployment published between the
        // two is checked again at the next use of the look.
        let issued = *self.issued_revision.borrow();
        LookStamp {
            keys: self.remembered().stamp,
            issued,
        }
    }

    /// What a pulling agent's look found for key `hash`, when no key
    /// changed since and it is younger than [`LOOK_KEPT`]. When a
    /// deployment issued the host an allowlist since, the look holds only
    /// if that deployment's documents are in memory (this process made
    /// it): its version is taken from there; otherwise the look is read
    /// again.
    pub fn remembered_look(&self, hash: &str, now: Instant) -> Option<Look> {
        let issued_now = *self.issued_revision.borrow();
        let (look, seen, keys) = {
            let looks = self.remembered();
            let (at, look, seen) = looks.entries.get(hash)?;
            if now.saturating_duration_since(*at) >= LOOK_KEPT {
                return None;
            }
            (look.clone(), *seen, looks.stamp)
        };
        if seen == issued_now || !self.concerns(look.host_id, seen, issued_now) {
            return Some(look);
        }
        // The newest deployment's document is at least as new as any
        // issued up to `issued_now`.
        let document = self.issued_document(look.host_id)?;
        let look = Look {
            host_id: look.host_id,
            version: Some(IssuedVersion {
                deployment_id: document.deployment_id,
                checksum: document.checksum.clone(),
                serial: document.serial,
            }),
        };
        let mut looks = self.remembered();
        // Kept for the next look, unless a key changed meanwhile.
        if looks.stamp == keys
            && let Some(entry) = looks.entries.get_mut(hash)
        {
            entry.1 = look.clone();
            entry.2 = issued_now;
        }
        Some(look)
    }

    /// Remembers what a look read, unless a key changed since `stamp` was
    /// taken (the read may predate it).
    pub fn remember_look(&self, stamp: LookStamp, hash: &str, look: Look, now: Instant) {
        let mut looks = self.remembered();
        if looks.stamp != stamp.keys {
            return;
        }
        if looks.entries.len() >= LOOKS_KEPT {
            looks.entries.clear();
        }
        looks
            .entries
            .insert(hash.to_owned(), (now, look, stamp.issued));
    }

    /// Forgets every remembered look: something was committed that may
    /// have changed a key (a revocation, a deleted host).
    pub fn forget_looks(&self) {
        let mut looks = self.remembered();
        looks.stamp = looks.stamp.wrapping_add(1);
        looks.entries.clear();
    }

    /// How many wait for allowlists now (the metrics show it).
    pub fn pull_waiters(&self) -> usize {
        self.issued_revision.receiver_count()
    }
}

/// A deployment of this process between its commit and its publication.
#[derive(Debug)]
pub struct Publishing(Arc<Changes>);

impl Drop for Publishing {
    fn drop(&mut self) {
        self.0.publishing.send_modify(|n| *n = n.saturating_sub(1));
    }
}

/// A waiter for commits.
#[derive(Debug)]
pub struct Committed(watch::Receiver<u64>);

impl Committed {
    /// Until the next commit after this waiter was taken or last woken.
    pub async fn changed(&mut self) {
        if self.0.changed().await.is_err() {
            // The hub is gone (the store is closing): nothing will change.
            std::future::pending::<()>().await;
        }
    }
}

/// A waiter for allowlists issued.
#[derive(Debug)]
pub struct IssuedTo {
    changes: Arc<Changes>,
    receiver: watch::Receiver<u64>,
    seen: u64,
}

impl IssuedTo {
    /// Until a deployment published after this waiter was taken (or last
    /// woken) issued an allowlist to `host`.
    pub async fn issued(&mut self, host: i64) {
        loop {
            if self.receiver.changed().await.is_err() {
                std::future::pending::<()>().await;
            }
            let now = *self.receiver.borrow_and_update();
            let concerned = self.changes.concerns(host, self.seen, now);
            self.seen = now;
            if concerned {
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn hosts(ids: &[i64]) -> Issued {
        Issued::Hosts(Arc::new(ids.iter().copied().collect()))
    }

    /// Whether `wait` finishes within a short while.
    async fn wakes(wait: impl std::future::Future<Output = ()>) -> bool {
        tokio::time::timeout(Duration::from_millis(50), wait)
            .await
            .is_ok()
    }

    #[tokio::test]
    async fn a_deployment_wakes_only_the_hosts_it_issued_to() {
        let changes = Arc::new(Changes::new());
        let mut one = changes.watch_issued();
        let mut two = changes.watch_issued();
        changes.issued(10, hosts(&[2, 3]));
        assert!(!wakes(one.issued(1)).await);
        assert!(wakes(two.issued(2)).await);
        // Woken once per deployment.
        assert!(!wakes(two.issued(2)).await);
        changes.issued(11, Issued::Everyone);
        assert!(wakes(one.issued(1)).await);
    }

    #[tokio::test]
    async fn a_waiter_taken_before_a_deployment_is_woken_by_it_even_later() {
        let changes = Arc::new(Changes::new());
        let mut one = changes.watch_issued();
        changes.issued(10, hosts(&[1]));
        changes.issued(11, hosts(&[2]));
        assert!(wakes(one.issued(1)).await);
    }

    #[tokio::test]
    async fn a_deployment_published_twice_wakes_once() {
        let changes = Arc::new(Changes::new());
        let mut one = changes.watch_issued();
        changes.issued(10, hosts(&[1]));
        assert!(wakes(one.issued(1)).await);
        changes.issued(10, hosts(&[1]));
        assert!(!wakes(one.issued(1)).await);
        assert_eq!(changes.newest_issued(), 10);
    }

    #[tokio::test]
    async fn a_waiter_that_missed_dropped_entries_looks() {
        let changes = Arc::new(Changes::new());
        let mut one = changes.watch_issued();
        for deployment in 0..(ISSUED_KEPT as i64 + 5) {
            changes.issued(deployment, hosts(&[2]));
        }
        assert!(wakes(one.issued(1)).await);
    }

    fn document(deployment: i64, host: i64) -> DeploymentHost {
        DeploymentHost {
            deployment_id: deployment,
            host_id: host,
            host_name: format!("h{host}"),
            address: None,
            agent_port: 7446,
            checksum: "c".into(),
            serial: deployment,
            allowlist: "{}".into(),
            result: crate::domain::deployment::HostResult::Pending,
            error: None,
            attempts: 0,
            updated_at: 0,
            delivery: crate::domain::kind::Delivery::Pull,
            stage: 1,
            staged_allowlist: String::new(),
        }
    }

    #[tokio::test]
    async fn each_stage_of_a_deployment_wakes_its_own_hosts_and_adds_its_documents() {
        let changes = Arc::new(Changes::new());
        let mut first = changes.watch_issued();
        let mut later = changes.watch_issued();
        changes.issued_stage_documents(10, 1, vec![document(10, 1)]);
        assert!(wakes(first.issued(1)).await);
        assert!(!wakes(later.issued(2)).await, "stage 2 has not begun");
        assert!(changes.issued_document(2).is_none());
        changes.issued_stage_documents(10, 2, vec![document(10, 2)]);
        assert!(wakes(later.issued(2)).await);
        assert!(changes.stage_published(10, 2));
        // Both stages' documents answer from memory.
        assert_eq!(changes.issued_document(1).map(|d| d.serial), Some(10));
        assert_eq!(changes.issued_document(2).map(|d| d.serial), Some(10));
        // A stage published again (a catch-up) wakes nobody.
        changes.issued_stage(10, 2, hosts(&[2]));
        assert!(!wakes(later.issued(2)).await);
    }

    #[tokio::test]
    async fn only_the_newest_deployments_documents_answer_from_memory() {
        let changes = Arc::new(Changes::new());
        let mut one = changes.watch_issued();
        changes.issued_documents(10, vec![document(10, 1), document(10, 2)]);
        assert!(wakes(one.issued(1)).await);
        assert_eq!(changes.issued_document(1).map(|d| d.serial), Some(10));
        assert!(changes.issued_document(3).is_none());
        // A newer deployment known only from the database: none from memory.
        changes.issued(11, hosts(&[1]));
        assert!(changes.issued_document(1).is_none());
        changes.issued_documents(12, vec![document(12, 1)]);
        assert_eq!(changes.issued_document(1).map(|d| d.serial), Some(12));
        assert!(changes.issued_document(2).is_none());
    }

    #[tokio::test]
    async fn commits_wake_their_waiters() {
        let changes = Changes::new();
        let mut waiter = changes.watch_committed();
        assert!(!wakes(waiter.changed()).await);
        changes.committed();
        assert!(wakes(waiter.changed()).await);
        assert!(!wakes(waiter.changed()).await);
    }

    fn look(host: i64) -> Look {
        Look {
            host_id: host,
            version: None,
        }
    }

    #[test]
    fn a_look_is_remembered_until_a_key_may_have_changed() {
        let changes = Changes::new();
        let now = Instant::now();
        changes.remember_look(changes.look_stamp(), "k1", look(1), now);
        assert_eq!(changes.remembered_look("k1", now), Some(look(1)));
        assert_eq!(changes.remembered_look("k2", now), None);
        // Results, fetches and the periodic catch-up keep it.
        changes.recorded();
        assert_eq!(changes.remembered_look("k1", now), Some(look(1)));
        // So does a deployment that issued the host nothing.
        changes.issued(10, hosts(&[2]));
        assert_eq!(changes.remembered_look("k1", now), Some(look(1)));
        changes.committed();
        assert_eq!(changes.remembered_look("k1", now), None);
    }

    #[test]
    fn a_look_takes_its_hosts_new_version_from_this_processs_deployment() {
        let changes = Changes::new();
        let now = Instant::now();
        changes.remember_look(changes.look_stamp(), "k1", look(1), now);
        changes.remember_look(changes.look_stamp(), "k2", look(2), now);
        changes.issued_documents(10, vec![document(10, 1)]);
        let expected = Look {
            host_id: 1,
            version: Some(IssuedVersion {
                deployment_id: 10,
                checksum: "c".into(),
                serial: 10,
            }),
        };
        assert_eq!(changes.remembered_look("k1", now), Some(expected.clone()));
        // Taken once, then kept.
        assert_eq!(changes.remembered_look("k1", now), Some(expected));
        assert_eq!(changes.remembered_look("k2", now), Some(look(2)));
    }

    #[test]
    fn a_look_is_read_again_after_another_processs_deployment_to_its_host() {
        let changes = Changes::new();
        let now = Instant::now();
        changes.remember_look(changes.look_stamp(), "k1", look(1), now);
        changes.remember_look(changes.look_stamp(), "k2", look(2), now);
        // Published by a catch-up: no documents in memory.
        changes.issued(11, hosts(&[1]));
        assert_eq!(changes.remembered_look("k1", now), None);
        assert_eq!(changes.remembered_look("k2", now), Some(look(2)));
        // A catch-up that cannot tell which hosts: every look is read again.
        changes.issued(12, Issued::Everyone);
        assert_eq!(changes.remembered_look("k2", now), None);
    }

    #[test]
    fn a_look_read_across_a_change_is_not_trusted() {
        let now = Instant::now();
        // While the look reads: a revocation commits (the look is not
        // remembered), or a deployment issues its host an allowlist (the
        // look is checked against it, and read again).
        let changes_while_reading: [fn(&Changes); 2] = [Changes::committed, |changes| {
            changes.issued(11, hosts(&[1]));
        }];
        for change in changes_while_reading {
            let changes = Changes::new();
            let stamp = changes.look_stamp();
            change(&changes);
            changes.remember_look(stamp, "k1", look(1), now);
            assert_eq!(changes.remembered_look("k1", now), None);
        }
    }

    #[test]
    fn a_remembered_look_ages_out() {
        let changes = Changes::new();
        let then = Instant::now();
        changes.remember_look(changes.look_stamp(), "k1", look(1), then);
        assert_eq!(
            changes.remembered_look("k1", then + LOOK_KEPT - Duration::from_secs(1)),
            Some(look(1))
        );
        assert_eq!(changes.remembered_look("k1", then + LOOK_KEPT), None);
    }

    #[tokio::test]
    async fn a_catch_up_waits_for_this_processs_deployment_to_publish() {
        let changes = Arc::new(Changes::new());
        // Nothing committing: at once.
        assert!(wakes(changes.own_published(Duration::from_secs(60))).await);
        let publishing = changes.publishing();
        assert!(!wakes(changes.own_published(Duration::from_secs(60))).await);
        drop(publishing);
        assert!(wakes(changes.own_published(Duration::from_secs(60))).await);
    }
}
