//! The transmission protocols a card may use (card-spec 2): both are allowed, and the response
//! delivery rules (2.3) differ between them.

/// Transmission protocol the card announces in its ATR and follows for response delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
pub enum Protocol {
    #[serde(rename = "T=0")]
    T0,
    #[serde(rename = "T=1")]
    T1,
}

impl Protocol {
    pub fn name(self) -> &'static str {
        match self {
            Protocol::T0 => "T=0",
            Protocol::T1 => "T=1",
        }
    }
}
