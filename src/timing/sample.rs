//! One timed exchange (or one timed engine run): the row of `samples.csv`.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sample {
    pub op: String,
    pub iteration: u32,
    pub head: String,
    pub card_id: String,
    pub atr: String,
    pub duration_ns: u64,
    /// True for the neutral command measured interleaved with the op.
    pub baseline: bool,
}

/// Write samples as CSV (header `op,iteration,head,card_id,atr,duration_ns,baseline`).
pub fn write_csv(path: &std::path::Path, samples: &[Sample]) -> Result<(), csv::Error> {
    let mut w = csv::Writer::from_path(path)?;
    for s in samples {
        w.serialize(s)?;
    }
    w.flush()?;
    Ok(())
}

/// Read `samples.csv` back.
pub fn read_csv(path: &std::path::Path) -> Result<Vec<Sample>, csv::Error> {
    csv::Reader::from_path(path)?.deserialize().collect()
}
