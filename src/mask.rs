//! TEMPORARY stand-in for the lead's `crate::mask` (contract in helper-brief.md), so the replay
//! code compiles before main has it. Dropped at the merge.

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Mask {
    all: bool,
    ranges: Vec<(usize, usize)>,
}

impl Mask {
    pub fn none() -> Mask {
        Mask::default()
    }
    pub fn all() -> Mask {
        Mask { all: true, ranges: vec![] }
    }
    pub fn ranges(r: &[(usize, usize)]) -> Mask {
        Mask { all: false, ranges: r.to_vec() }
    }
    pub fn covers(&self, i: usize) -> bool {
        self.all || self.ranges.iter().any(|(s, e)| *s <= i && i <= *e)
    }
}

impl std::fmt::Display for Mask {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let parts: Vec<String> = self.ranges.iter().map(|(s, e)| format!("{s}-{e}")).collect();
        write!(f, "{}", parts.join(" "))
    }
}

impl std::str::FromStr for Mask {
    type Err = String;
    fn from_str(s: &str) -> Result<Mask, String> {
        let mut r = Vec::new();
        for p in s.split_whitespace() {
            let (a, b) = p.split_once('-').ok_or_else(|| format!("mask range `{p}` is not START-END"))?;
            r.push((
                a.parse().map_err(|_| format!("bad mask `{p}`"))?,
                b.parse().map_err(|_| format!("bad mask `{p}`"))?,
            ));
        }
        Ok(Mask::ranges(&r))
    }
}

pub fn dynamic(_command: &[u8], _response: &[u8]) -> Mask {
    Mask::none()
}
