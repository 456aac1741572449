//! Connection states (RFC 9293 section 3.3.2) and socket readiness.

use crate::error::TcpError;

/// The eleven TCP states of RFC 9293 section 3.3.2 (Linux: `TCP_ESTABLISHED` ...).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TcpState {
    /// No connection.
    Closed,
    /// Waiting for SYNs.
    Listen,
    /// SYN sent, waiting for SYN-ACK.
    SynSent,
    /// SYN received and answered, waiting for the ACK.
    SynReceived,
    /// Open; data flows both ways.
    Established,
    /// We sent FIN; waiting for its ACK or the peer's FIN.
    FinWait1,
    /// Our FIN is acknowledged; waiting for the peer's FIN.
    FinWait2,
    /// The peer sent FIN; waiting for our close.
    CloseWait,
    /// Both sent FIN at once; waiting for the ACK of ours.
    Closing,
    /// We sent FIN after the peer's; waiting for its ACK.
    LastAck,
    /// Waiting 2*MSL so late segments die out.
    TimeWait,
}

impl TcpState {
    /// Synchronized states (RFC 9293: ESTABLISHED and later).
    pub fn is_synchronized(self) -> bool {
        !matches!(
            self,
            TcpState::Closed | TcpState::Listen | TcpState::SynSent | TcpState::SynReceived
        )
    }

    /// States where we may still send data.
    pub fn can_send(self) -> bool {
        matches!(self, TcpState::Established | TcpState::CloseWait)
    }

    /// States counted in CurrEstab.
    pub fn counts_established(self) -> bool {
        matches!(self, TcpState::Established | TcpState::CloseWait)
    }
}

/// What a socket is ready for (Linux: `tcp_poll` mask).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Readiness {
    /// Data (or EOF, or an error) can be read.
    pub readable: bool,
    /// Data can be written (send buffer has room and the connection is open).
    pub writable: bool,
    /// A listener has a connection to accept.
    pub acceptable: bool,
    /// The handshake has completed (ESTABLISHED or later).
    pub connected: bool,
    /// A pending error (not consumed).
    pub error: Option<TcpError>,
    /// The peer sent FIN (EOF after the queued data) or the connection is gone.
    pub read_closed: bool,
    /// We can no longer send (shutdown, FIN sent, or the connection is gone).
    pub write_closed: bool,
}
