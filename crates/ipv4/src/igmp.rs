//! IGMP host side: group memberships per device, reports and leaves, answers to queries
//! (RFC 3376 IGMPv3 for any-source multicast, with the RFC 2236 / RFC 1112 compatibility
//! modes; Linux: `net/ipv4/igmp.c`).
//!
//! Sans-IO, like the rest of the layer: [`Igmp`] is told of joins, leaves, received
//! messages and the time, and queues the messages to send ([`IgmpOut`]), which
//! [`crate::Ipv4Layer`] wraps in datagrams with TTL 1 and the Router Alert option
//! (RFC 2113).
//!
//! Every membership is "any source" (`EXCLUDE {}` in RFC 3376 terms): a join reports
//! `TO_EX {}`, a leave `TO_IN {}`, each repeated [`ROBUSTNESS`] times, the repetitions
//! spread over the unsolicited report interval. A general query is answered with one
//! report holding every group of the device (`IS_EX {}`) after a random delay within the
//! query's maximum response time; a group-specific query with that group's `IS_EX {}`; a
//! group-and-source-specific one with `IS_IN` of the sources asked about (all of them are
//! wanted; RFC 3376 5.2 merges the sources of several such queries, up to
//! [`MAX_QUERY_SOURCES`], beyond which the answer is `IS_EX {}`). A v1 or v2 query
//! puts the device into that version's compatibility mode for the older-version-querier
//! timeout (RFC 3376 7.2.1): reports are then v1/v2 reports to the group, leaves v2
//! leaves to 224.0.0.2 (v1 has none), and another host's report for a group cancels ours
//! (RFC 2236 report suppression). 224.0.0.1 (all hosts) is always joined and never
//! reported.
//!
//! Everything received is hostile: messages are length- and checksum-checked, a query
//! only ever moves a timer earlier, and the state is bounded by the joins the
//! applications made.

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use ustack_netdev::rng::SplitMix64;
use ustack_netdev::DevId;

use crate::checksum;

/// IP protocol number of IGMP.
pub const IPPROTO_IGMP: u8 = 2;
/// The all-hosts group, joined by every multicast-capable device and never reported.
pub const ALL_HOSTS: Ipv4Addr = Ipv4Addr::new(224, 0, 0, 1);
/// Where IGMPv2 leaves go (all routers).
pub const ALL_ROUTERS: Ipv4Addr = Ipv4Addr::new(224, 0, 0, 2);
/// Where IGMPv3 reports go.
pub const V3_REPORTS: Ipv4Addr = Ipv4Addr::new(224, 0, 0, 22);

/// Robustness variable (RFC 3376 8.1; Linux `igmp_qrv`): how many times a state change
/// is reported.
pub const ROBUSTNESS: u8 = 2;
/// Unsolicited report interval of IGMPv3 (RFC 3376 8.11; Linux 1 s).
pub const V3_UNSOLICITED_INTERVAL: Duration = Duration::from_secs(1);
/// Unsolicited report interval of IGMPv1/v2 (RFC 2236 8.10: 10 s).
pub const V2_UNSOLICITED_INTERVAL: Duration = Duration::from_secs(10);
/// Older version querier present timeout (RFC 3376 8.12: robustness x query interval +
/// query response interval = 2 x 125 s + 10 s).
pub const OLDER_QUERIER_TIMEOUT: Duration = Duration::from_secs(260);
/// Maximum response time of an IGMPv1 query, which carries none (RFC 2236 4).
pub const V1_MAX_RESPONSE: Duration = Duration::from_secs(10);
/// Sources kept for one pending answer to group-and-source-specific queries; with more,
/// the answer claims every source (`IS_EX {}`), which is also true.
pub const MAX_QUERY_SOURCES: usize = 64;

const TYPE_QUERY: u8 = 0x11;
const TYPE_V1_REPORT: u8 = 0x12;
const TYPE_V2_REPORT: u8 = 0x16;
const TYPE_V2_LEAVE: u8 = 0x17;
const TYPE_V3_REPORT: u8 = 0x22;

/// IGMPv3 group record types (RFC 3376 4.2.12).
const MODE_IS_INCLUDE: u8 = 1;
const MODE_IS_EXCLUDE: u8 = 2;
const CHANGE_TO_INCLUDE: u8 = 3;
const CHANGE_TO_EXCLUDE: u8 = 4;

/// Bytes of an IGMPv3 report header and of one group record without sources.
const V3_HEADER: usize = 8;
const V3_RECORD: usize = 8;

/// IGMP counters (no `/proc/net/snmp` line exists for them; named after what they count).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct IgmpStats {
    /// Messages received (including erroneous ones).
    pub in_msgs: u64,
    /// Received with a bad checksum or length.
    pub in_errors: u64,
    /// Membership queries received (any version).
    pub in_queries: u64,
    /// v1/v2 reports of other hosts received for a group of ours.
    pub in_reports: u64,
    /// Reports sent (v1, v2 or v3 messages).
    pub out_reports: u64,
    /// v2 leave messages sent.
    pub out_leaves: u64,
}

/// An IGMP message to send: the device, the IP destination and the message itself.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IgmpOut {
    /// Device to send it on.
    pub dev: DevId,
    /// IP destination (the group, 224.0.0.2 or 224.0.0.22).
    pub dst: Ipv4Addr,
    /// The IGMP message, checksum filled.
    pub msg: Vec<u8>,
}

/// A received IGMP message (only what a host acts on).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum IgmpMsg {
    /// A membership query: its version (1, 2 or 3), maximum response time and group
    /// (0.0.0.0 for a general query).
    Query {
        /// 1, 2 or 3 (RFC 3376 7.1: by length and maximum response code).
        version: u8,
        /// Maximum response time.
        max_resp: Duration,
        /// The group asked about; unspecified for a general query.
        group: Ipv4Addr,
        /// The sources asked about (a v3 group-and-source-specific query), at most
        /// [`MAX_QUERY_SOURCES`]; `None` when there are more.
        sources: Option<Vec<Ipv4Addr>>,
    },
    /// Another host's v1 or v2 membership report.
    Report {
        /// The group reported.
        group: Ipv4Addr,
    },
    /// Anything else a host ignores (v2 leaves, v3 reports, unknown types).
    Other,
}

/// Why a received IGMP message was rejected.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IgmpParseError {
    /// Shorter than 8 bytes, or than its source list says, or a query of 9 to 11 bytes.
    Truncated,
    /// The checksum does not match.
    BadChecksum,
}

/// Decodes an IGMPv3 maximum response code (RFC 3376 4.1.1) into tenths of a second.
fn decode_resp_code(code: u8) -> u32 {
    if code < 128 {
        u32::from(code)
    } else {
        let mant = u32::from(code & 0x0f);
        let exp = u32::from((code >> 4) & 0x07);
        (mant | 0x10) << (exp + 3)
    }
}

fn addr_at(b: &[u8], at: usize) -> Ipv4Addr {
    match b.get(at..at + 4) {
        Some(&[a, b, c, d]) => Ipv4Addr::new(a, b, c, d),
        _ => Ipv4Addr::UNSPECIFIED,
    }
}

impl IgmpMsg {
    /// Parses and checksum-checks a received IGMP message (the IP payload).
    pub fn parse(b: &[u8]) -> Result<IgmpMsg, IgmpParseError> {
        if b.len() < 8 {
            return Err(IgmpParseError::Truncated);
        }
        if checksum::checksum(b) != 0 {
            return Err(IgmpParseError::BadChecksum);
        }
        let group = addr_at(b, 4);
        Ok(match b[0] {
            TYPE_QUERY => {
                let code = b[1];
                let mut sources = Some(Vec::new());
                let (version, tenths) = match b.len() {
                    8 if code == 0 => (1, V1_MAX_RESPONSE.as_millis() as u32 / 100),
                    8 => (2, u32::from(code)),
                    9..=11 => return Err(IgmpParseError::Truncated),
                    _ => {
                        let n = b
                            .get(10..12)
                            .map_or(0, |s| usize::from(u16::from_be_bytes([s[0], s[1]])));
                        if b.len() < 12 + 4 * n {
                            return Err(IgmpParseError::Truncated);
                        }
                        sources = (n <= MAX_QUERY_SOURCES)
                            .then(|| (0..n).map(|i| addr_at(b, 12 + 4 * i)).collect());
                        (3, decode_resp_code(code))
                    }
                };
                IgmpMsg::Query {
                    version,
                    // A code of 0 would make every host answer at once; take 0.1 s.
                    max_resp: Duration::from_millis(u64::from(tenths.max(1)) * 100),
                    group,
                    sources,
                }
            }
            TYPE_V1_REPORT | TYPE_V2_REPORT => IgmpMsg::Report { group },
            _ => IgmpMsg::Other,
        })
    }
}

/// An 8-byte v1/v2 message (`typ` 0x12, 0x16 or 0x17) about `group`.
fn v2_message(typ: u8, group: Ipv4Addr) -> Vec<u8> {
    let mut m = vec![typ, 0, 0, 0];
    m.extend_from_slice(&group.octets());
    let c = checksum::checksum(&m);
    m[2..4].copy_from_slice(&c.to_be_bytes());
    m
}

/// One IGMPv3 group record: type, group, sources.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Record {
    typ: u8,
    group: Ipv4Addr,
    sources: Vec<Ipv4Addr>,
}

impl Record {
    fn new(typ: u8, group: Ipv4Addr) -> Record {
        Record {
            typ,
            group,
            sources: Vec::new(),
        }
    }

    fn len(&self) -> usize {
        V3_RECORD + 4 * self.sources.len()
    }
}

/// An IGMPv3 report holding `records`.
fn v3_report(records: &[Record]) -> Vec<u8> {
    let n = u16::try_from(records.len()).unwrap_or(u16::MAX);
    let mut m = Vec::with_capacity(V3_HEADER + records.iter().map(Record::len).sum::<usize>());
    m.extend_from_slice(&[TYPE_V3_REPORT, 0, 0, 0, 0, 0]);
    m.extend_from_slice(&n.to_be_bytes());
    for r in records.iter().take(usize::from(n)) {
        let ns = u16::try_from(r.sources.len()).unwrap_or(0);
        m.extend_from_slice(&[r.typ, 0]);
        m.extend_from_slice(&ns.to_be_bytes());
        m.extend_from_slice(&r.group.octets());
        for s in r.sources.iter().take(usize::from(ns)) {
            m.extend_from_slice(&s.octets());
        }
    }
    let c = checksum::checksum(&m);
    m[2..4].copy_from_slice(&c.to_be_bytes());
    m
}

/// One joined group on one device (Linux `struct ip_mc_list`).
#[derive(Clone, Debug)]
struct Group {
    dev: DevId,
    addr: Ipv4Addr,
    /// Sockets that joined it.
    users: u32,
    /// When the next report is due, if one is.
    report_at: Option<Instant>,
    /// State-change reports (`TO_EX {}`) still to send, the one due at `report_at`
    /// included; 0: the due report answers a query (`IS_EX {}`).
    changes_left: u8,
    /// We sent the last v1/v2 report heard for it (RFC 2236: only then is a leave sent).
    reporter: bool,
    /// The due answer is to group-and-source-specific queries about these sources
    /// (RFC 3376 5.2); `None`: to a general or group-specific query (or none is due).
    query_sources: Option<Vec<Ipv4Addr>>,
}

/// A group left while its `TO_IN {}` retransmissions are still due (Linux `mc_tomb`).
#[derive(Clone, Debug)]
struct Tomb {
    dev: DevId,
    addr: Ipv4Addr,
    at: Instant,
    left: u8,
}

/// Per-device state: compatibility mode and the pending answer to a v3 general query.
#[derive(Clone, Debug)]
struct DevState {
    dev: DevId,
    v1_until: Option<Instant>,
    v2_until: Option<Instant>,
    general_at: Option<Instant>,
}

/// The IGMP host state of a stack (Linux: the `mc_list` of every `in_device`).
#[derive(Debug)]
pub struct Igmp {
    groups: Vec<Group>,
    tombs: Vec<Tomb>,
    devs: Vec<DevState>,
    rng: SplitMix64,
    out: Vec<IgmpOut>,
    stats: IgmpStats,
}

impl Default for Igmp {
    fn default() -> Self {
        Igmp::new(0x6a09_e667_f3bc_c908)
    }
}

impl Igmp {
    /// No memberships; `seed` seeds the random report delays.
    pub fn new(seed: u64) -> Self {
        Igmp {
            groups: Vec::new(),
            tombs: Vec::new(),
            devs: Vec::new(),
            rng: SplitMix64::new(seed),
            out: Vec::new(),
            stats: IgmpStats::default(),
        }
    }

    /// Reseeds the generator of report delays.
    pub fn reseed(&mut self, seed: u64) {
        self.rng = SplitMix64::new(seed);
    }

    /// The counters.
    pub fn stats(&self) -> IgmpStats {
        self.stats
    }

    /// True when device `dev` receives datagrams to `group`: 224.0.0.1, or a group a
    /// socket joined on it.
    pub fn is_member(&self, dev: DevId, group: Ipv4Addr) -> bool {
        group == ALL_HOSTS || self.groups.iter().any(|g| g.dev == dev && g.addr == group)
    }

    /// Every membership: device, group and the number of sockets that joined it
    /// (Linux `/proc/net/igmp`).
    pub fn memberships(&self) -> impl Iterator<Item = (DevId, Ipv4Addr, u32)> + '_ {
        self.groups.iter().map(|g| (g.dev, g.addr, g.users))
    }

    /// A random instant within `(now, now + max]`.
    fn random_within(&mut self, now: Instant, max: Duration) -> Instant {
        let ms = u64::try_from(max.as_millis()).unwrap_or(u64::MAX).max(1);
        now + Duration::from_millis(1 + self.rng.below(ms))
    }

    fn dev_state(&mut self, dev: DevId) -> &mut DevState {
        let i = match self.devs.iter().position(|d| d.dev == dev) {
            Some(i) => i,
            None => {
                self.devs.push(DevState {
                    dev,
                    v1_until: None,
                    v2_until: None,
                    general_at: None,
                });
                self.devs.len() - 1
            }
        };
        &mut self.devs[i]
    }

    /// Forgets device `dev` (Linux `ip_mc_destroy_dev`): its memberships, pending
    /// reports and leaves, and its querier state. Nothing is sent: the device is gone.
    pub fn remove_dev(&mut self, dev: DevId) {
        self.groups.retain(|g| g.dev != dev);
        self.tombs.retain(|t| t.dev != dev);
        self.devs.retain(|d| d.dev != dev);
        self.out.retain(|o| o.dev != dev);
    }

    /// The IGMP version device `dev` speaks at `now` (3 unless an older querier was heard
    /// within [`OLDER_QUERIER_TIMEOUT`]).
    pub fn version(&self, dev: DevId, now: Instant) -> u8 {
        match self.devs.iter().find(|d| d.dev == dev) {
            Some(d) if d.v1_until.is_some_and(|t| t > now) => 1,
            Some(d) if d.v2_until.is_some_and(|t| t > now) => 2,
            _ => 3,
        }
    }

    /// A socket joins `group` on `dev` (Linux `ip_mc_inc_group`). The first join sends
    /// an unsolicited report now and repeats it; later ones only count. Returns true for
    /// the first join. 224.0.0.1 is counted but never reported.
    pub fn join(&mut self, now: Instant, dev: DevId, group: Ipv4Addr) -> bool {
        if let Some(g) = self
            .groups
            .iter_mut()
            .find(|g| g.dev == dev && g.addr == group)
        {
            g.users = g.users.saturating_add(1);
            return false;
        }
        // A rejoin supersedes the leave still being repeated.
        self.tombs.retain(|t| !(t.dev == dev && t.addr == group));
        let report = group != ALL_HOSTS;
        self.groups.push(Group {
            dev,
            addr: group,
            users: 1,
            report_at: report.then_some(now),
            changes_left: if report { ROBUSTNESS } else { 0 },
            reporter: false,
            query_sources: None,
        });
        if report {
            self.fire(now);
        }
        true
    }

    /// A socket leaves `group` on `dev` (Linux `ip_mc_dec_group`). The last leave stops
    /// reception and reports it: `TO_IN {}` repeated (v3), one v2 leave if we were the
    /// last reporter (v2), nothing (v1). False when `dev` had not joined `group`.
    pub fn leave(&mut self, now: Instant, dev: DevId, group: Ipv4Addr) -> bool {
        let Some(i) = self
            .groups
            .iter()
            .position(|g| g.dev == dev && g.addr == group)
        else {
            return false;
        };
        let g = &mut self.groups[i];
        g.users = g.users.saturating_sub(1);
        if g.users > 0 {
            return true;
        }
        let g = self.groups.swap_remove(i);
        if !self
            .groups
            .iter()
            .any(|g| g.dev == dev && g.addr != ALL_HOSTS)
        {
            // No group left to answer a pending general query for.
            if let Some(d) = self.devs.iter_mut().find(|d| d.dev == dev) {
                d.general_at = None;
            }
        }
        if group == ALL_HOSTS {
            return true;
        }
        match self.version(dev, now) {
            3 => {
                self.tombs.push(Tomb {
                    dev,
                    addr: group,
                    at: now,
                    left: ROBUSTNESS,
                });
                self.fire(now);
            }
            2 if g.reporter => {
                self.out.push(IgmpOut {
                    dev,
                    dst: ALL_ROUTERS,
                    msg: v2_message(TYPE_V2_LEAVE, group),
                });
                self.stats.out_leaves += 1;
            }
            _ => {}
        }
        true
    }

    /// Processes a received IGMP message (the IP payload) that arrived on `dev`
    /// (Linux `igmp_rcv`).
    pub fn input(&mut self, now: Instant, dev: DevId, msg: &[u8]) -> Result<(), IgmpParseError> {
        self.stats.in_msgs += 1;
        let m = match IgmpMsg::parse(msg) {
            Ok(m) => m,
            Err(e) => {
                self.stats.in_errors += 1;
                return Err(e);
            }
        };
        match m {
            IgmpMsg::Query {
                version,
                max_resp,
                group,
                sources,
            } => {
                self.stats.in_queries += 1;
                self.query(now, dev, version, max_resp, group, sources);
            }
            IgmpMsg::Report { group } => {
                // RFC 2236 3: another member answered; ours is not needed (v1/v2 only:
                // v3 has no suppression, and its reports go to 224.0.0.22).
                if self.version(dev, now) < 3 {
                    if let Some(g) = self
                        .groups
                        .iter_mut()
                        .find(|g| g.dev == dev && g.addr == group)
                    {
                        self.stats.in_reports += 1;
                        if g.changes_left == 0 {
                            g.report_at = None;
                        }
                        g.reporter = false;
                    }
                }
            }
            IgmpMsg::Other => {}
        }
        Ok(())
    }

    fn query(
        &mut self,
        now: Instant,
        dev: DevId,
        version: u8,
        max_resp: Duration,
        group: Ipv4Addr,
        sources: Option<Vec<Ipv4Addr>>,
    ) {
        let before = self.version(dev, now);
        {
            let st = self.dev_state(dev);
            match version {
                1 => st.v1_until = Some(now + OLDER_QUERIER_TIMEOUT),
                2 => st.v2_until = Some(now + OLDER_QUERIER_TIMEOUT),
                _ => {}
            }
        }
        let mode = self.version(dev, now);
        if mode < before {
            // RFC 3376 7.2.1: switching to an older version cancels every pending
            // response and retransmission.
            for g in self.groups.iter_mut().filter(|g| g.dev == dev) {
                g.report_at = None;
                g.changes_left = 0;
                g.query_sources = None;
            }
            self.tombs.retain(|t| t.dev != dev);
            self.dev_state(dev).general_at = None;
        }
        // In a compatibility mode a newer query is answered as an older one (RFC 3376 7.2.1).
        let max_resp = if mode == 1 { V1_MAX_RESPONSE } else { max_resp };
        if mode == 3 && group.is_unspecified() {
            // One report for every group, unless one is already due sooner (RFC 3376 5.2).
            let at = self.random_within(now, max_resp);
            let st = self.dev_state(dev);
            if st.general_at.is_none_or(|t| t > at) {
                st.general_at = Some(at);
            }
            return;
        }
        // A v3 group-and-source-specific query (RFC 3376 5.2); older versions have none.
        let asked: Option<Vec<Ipv4Addr>> = match sources {
            Some(s) if mode == 3 && !s.is_empty() => Some(s),
            Some(_) => None,
            // Too many sources to keep: answered as group-specific.
            None => None,
        };
        let at = self.random_within(now, max_resp);
        for g in self
            .groups
            .iter_mut()
            .filter(|g| g.dev == dev && g.addr != ALL_HOSTS)
            .filter(|g| group.is_unspecified() || g.addr == group)
        {
            let pending = g.report_at.is_some();
            g.query_sources = match (&asked, pending, g.query_sources.take()) {
                // State-change reports and group-specific answers claim every source.
                (_, true, None) => None,
                _ if g.changes_left > 0 => None,
                (None, _, _) => None,
                (Some(a), false, _) => Some(a.clone()),
                // Sources asked again: the union, while it stays small.
                (Some(a), true, Some(mut had)) => {
                    for s in a {
                        if !had.contains(s) {
                            had.push(*s);
                        }
                    }
                    (had.len() <= MAX_QUERY_SOURCES).then_some(had)
                }
            };
            // Only ever earlier: a flood of queries cannot postpone an answer forever.
            if g.report_at.is_none_or(|t| t > at) {
                g.report_at = Some(at);
            }
        }
    }

    /// The next instant something is due, if any.
    pub fn next_deadline(&self) -> Option<Instant> {
        let groups = self.groups.iter().filter_map(|g| g.report_at);
        let tombs = self.tombs.iter().map(|t| t.at);
        let devs = self.devs.iter().filter_map(|d| d.general_at);
        groups.chain(tombs).chain(devs).min()
    }

    /// Sends what is due at `now` (into the queue [`take_out`](Self::take_out) drains).
    /// `room` gives, per device, the largest IGMP message its MTU carries; a v3 report
    /// with more records is split.
    pub fn on_timeout(&mut self, now: Instant, room: impl Fn(DevId) -> usize) {
        self.fire_with(now, &room);
    }

    fn fire(&mut self, now: Instant) {
        // Changes are reported at once; their messages are small, 1,500-byte links fit
        // ~180 records, and a split is decided by the on_timeout path with real MTUs.
        self.fire_with(now, &|_| 576 - 24);
    }

    fn fire_with(&mut self, now: Instant, room: &dyn Fn(DevId) -> usize) {
        let mut devs: Vec<DevId> = Vec::new();
        for d in self
            .groups
            .iter()
            .filter(|g| g.report_at.is_some_and(|t| t <= now))
            .map(|g| g.dev)
            .chain(self.tombs.iter().filter(|t| t.at <= now).map(|t| t.dev))
            .chain(
                self.devs
                    .iter()
                    .filter(|d| d.general_at.is_some_and(|t| t <= now))
                    .map(|d| d.dev),
            )
        {
            if !devs.contains(&d) {
                devs.push(d);
            }
        }
        for dev in devs {
            self.fire_dev(now, dev, room(dev));
        }
    }

    fn fire_dev(&mut self, now: Instant, dev: DevId, room: usize) {
        let version = self.version(dev, now);
        let general = self
            .devs
            .iter_mut()
            .find(|d| d.dev == dev)
            .and_then(|d| d.general_at.take_if(|t| *t <= now))
            .is_some();
        let mut records: Vec<Record> = Vec::new();
        let unsolicited = if version == 3 {
            V3_UNSOLICITED_INTERVAL
        } else {
            V2_UNSOLICITED_INTERVAL
        };
        let mut reschedule: Vec<usize> = Vec::new();
        for (i, g) in self.groups.iter_mut().enumerate() {
            if g.dev != dev || g.addr == ALL_HOSTS {
                continue;
            }
            let due = g.report_at.is_some_and(|t| t <= now);
            if !due && !general {
                continue;
            }
            let asked = if due { g.query_sources.take() } else { None };
            let record = match asked {
                _ if due && g.changes_left > 0 => Record::new(CHANGE_TO_EXCLUDE, g.addr),
                // Every source asked about is wanted (EXCLUDE {}): IS_IN of them, unless
                // a general answer claims them all anyway.
                Some(sources) if !general => Record {
                    sources,
                    ..Record::new(MODE_IS_INCLUDE, g.addr)
                },
                _ => Record::new(MODE_IS_EXCLUDE, g.addr),
            };
            records.push(record);
            if due {
                g.report_at = None;
                g.reporter = true;
                if g.changes_left > 0 {
                    g.changes_left -= 1;
                    if g.changes_left > 0 {
                        reschedule.push(i);
                    }
                }
            }
        }
        for i in reschedule {
            let at = self.random_within(now, unsolicited);
            if let Some(g) = self.groups.get_mut(i) {
                g.report_at = Some(at);
            }
        }
        let mut left_tombs = Vec::new();
        for t in self
            .tombs
            .iter_mut()
            .filter(|t| t.dev == dev && t.at <= now)
        {
            records.push(Record::new(CHANGE_TO_INCLUDE, t.addr));
            t.left = t.left.saturating_sub(1);
            left_tombs.push((t.addr, t.left));
        }
        for (addr, left) in left_tombs {
            if left == 0 {
                self.tombs.retain(|t| !(t.dev == dev && t.addr == addr));
            } else {
                let at = self.random_within(now, unsolicited);
                if let Some(t) = self
                    .tombs
                    .iter_mut()
                    .find(|t| t.dev == dev && t.addr == addr)
                {
                    t.at = at;
                }
            }
        }
        if records.is_empty() {
            return;
        }
        if version == 3 {
            // As many records per report as the link carries (at least one).
            let mut start = 0;
            while start < records.len() {
                let mut end = start;
                let mut len = V3_HEADER;
                while end < records.len() && (end == start || len + records[end].len() <= room) {
                    len += records[end].len();
                    end += 1;
                }
                self.out.push(IgmpOut {
                    dev,
                    dst: V3_REPORTS,
                    msg: v3_report(&records[start..end]),
                });
                self.stats.out_reports += 1;
                start = end;
            }
            return;
        }
        let typ = if version == 1 {
            TYPE_V1_REPORT
        } else {
            TYPE_V2_REPORT
        };
        for r in records {
            if r.typ == CHANGE_TO_INCLUDE {
                // Older versions have no such record (tombs are cleared on a switch).
                continue;
            }
            self.out.push(IgmpOut {
                dev,
                dst: r.group,
                msg: v2_message(typ, r.group),
            });
            self.stats.out_reports += 1;
        }
    }

    /// Moves the messages waiting to be sent into `out`.
    pub fn take_out(&mut self, out: &mut Vec<IgmpOut>) {
        out.append(&mut self.out);
    }
}

#[cfg(test)]
mod tests;
