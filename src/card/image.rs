//! The card's NVM image: every field that survives power-off.

use crate::secret::{Key16, Scalar32};

#[derive(Debug, Clone, Default)]
pub struct CardImage {
    /// Read-only card ID, written once at personalization.
    pub card_id: [u8; 8],
    /// Personalization is over; PUT/LOCK answer 6986 from now on.
    pub locked: bool,
    pub purse: PurseImage,
    pub cpay: CpayImage,
    pub xfer: XferImage,
}

/// Seed 000: value area 12C, signature area 12A, public-key area 12B, backward counter 13.
#[derive(Debug, Clone, Default)]
pub struct PurseImage {
    pub counter: u32,
    pub amount: u32,
    pub date: u32,
    pub signature: Vec<u8>,
    pub certificate: Vec<u8>,
}

/// Seed 000 prior art (\[0004\]-\[0008\]): a card with its own key pair that signs payments.
#[derive(Debug, Clone, Default)]
pub struct CpayImage {
    pub key: Option<Scalar32>,
    pub certificate: Vec<u8>,
    pub center_key: Option<[u8; 65]>,
    pub amount: u32,
    pub date: u32,
}

/// Seed 002: key information 204A plus value balance 108A and term of validity 111A.
#[derive(Debug, Clone, Default)]
pub struct XferImage {
    pub validity: u32,
    pub balance: u32,
    /// Largest balance the card accepts (overflow guard); 0 means u32::MAX.
    pub max_balance: u32,
    pub ukid: u32,
    pub uk: Option<Key16>,
    pub ukid_limit: u32,
    pub tkid: u32,
    pub tk: Option<Key16>,
    pub tkid_limit: u32,
    /// Preloaded transfer keys (4th embodiment): only the current ID moves.
    pub slots: Vec<(u32, Key16)>,
    pub ca_key: Option<[u8; 65]>,
    pub certificate: Vec<u8>,
    pub card_key: Option<Scalar32>,
    /// Receiving side of an unfinished transfer, kept until the reception challenge or a cancel.
    pub pending_credit: Option<PendingCredit>,
    /// Sending side: the last committed debit and the reception challenge it produced.
    pub last_debit: Option<LastDebit>,
    /// Sending side: the last `SEND_LOG_LEN` send sessions this card opened, oldest first,
    /// each marked open, debited or cancelled. It is what lets the card prove to a receiver
    /// that a session never debited (CANCEL PROOF) without trusting its last-debit record,
    /// which a later transfer overwrites.
    pub sends: Vec<SendRecord>,
}

/// How many send sessions the sending card remembers (card-spec 8.13).
pub const SEND_LOG_LEN: usize = 4;

/// Where a send session stands: a session debits at most once, and a cancelled one never.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SendState {
    /// Opened by VALUE SEND PERMISSION; no debit yet.
    Open,
    /// VALUE SEND committed the debit of this session.
    Debited,
    /// CANCEL PROOF was issued for it: it can never debit.
    Cancelled,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SendRecord {
    pub paid: u32,
    pub date: u32,
    pub rnd_send: [u8; 16],
    pub state: SendState,
}

impl XferImage {
    pub fn balance_cap(&self) -> u32 {
        if self.max_balance == 0 {
            u32::MAX
        } else {
            self.max_balance
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingCredit {
    pub paid: u32,
    pub date: u32,
    pub rnd_send: [u8; 16],
    pub rnd_recv: [u8; 16],
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LastDebit {
    pub paid: u32,
    pub date: u32,
    pub rnd_send: [u8; 16],
    pub rnd_recv: [u8; 16],
    pub challenge: [u8; 16],
}
