//! Status-word catalogue (ISO/IEC 7816-4 §5.6), shared by traces, reports and the TUI.

pub const OK: u16 = 0x9000;
pub const WRONG_LENGTH: u16 = 0x6700;
pub const SECURITY_NOT_SATISFIED: u16 = 0x6982;
pub const REF_DATA_NOT_USABLE: u16 = 0x6984;
pub const CONDITIONS_NOT_SATISFIED: u16 = 0x6985;
pub const COMMAND_NOT_ALLOWED: u16 = 0x6986;
pub const WRONG_DATA: u16 = 0x6A80;
pub const FUNC_NOT_SUPPORTED: u16 = 0x6A81;
pub const FILE_NOT_FOUND: u16 = 0x6A82;
pub const NOT_ENOUGH_MEMORY: u16 = 0x6A84;
pub const WRONG_P1P2: u16 = 0x6A86;
pub const REF_DATA_NOT_FOUND: u16 = 0x6A88;
pub const INS_NOT_SUPPORTED: u16 = 0x6D00;
pub const CLA_NOT_SUPPORTED: u16 = 0x6E00;
pub const MEMORY_FAILURE: u16 = 0x6581;
pub const NO_DIAGNOSIS: u16 = 0x6F00;

/// Coarse class of a status word, for filters and colours.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SwClass {
    /// 9000 and 61xx: normal processing.
    Normal,
    /// 62xx, 63xx: warning, NVM unchanged (62) or possibly changed (63).
    Warning,
    /// 64xx-66xx: execution error.
    ExecutionError,
    /// 67xx-6Fxx: checking error.
    CheckingError,
    /// Anything outside ISO/IEC 7816-4 interindustry values.
    Proprietary,
}

impl SwClass {
    pub fn name(self) -> &'static str {
        match self {
            SwClass::Normal => "normal",
            SwClass::Warning => "warning",
            SwClass::ExecutionError => "execution-error",
            SwClass::CheckingError => "checking-error",
            SwClass::Proprietary => "proprietary",
        }
    }
}

pub fn class(sw: u16) -> SwClass {
    match (sw >> 8) as u8 {
        0x90 if sw == OK => SwClass::Normal,
        0x61 => SwClass::Normal,
        0x62 | 0x63 => SwClass::Warning,
        0x64..=0x66 => SwClass::ExecutionError,
        0x67..=0x6F => SwClass::CheckingError,
        _ => SwClass::Proprietary,
    }
}

/// ```
/// assert_eq!(cardbench::sw::describe(0x6C16), "wrong Le: exact length is 16 (22)");
/// assert_eq!(cardbench::sw::describe(0x6A84), "not enough memory space in the file");
/// ```
///
/// Meaning of a status word per ISO/IEC 7816-4 Tables 5-6 (the card-spec meaning where the
/// reference card gives an interindustry value a specific use is in docs/card-spec.md).
pub fn describe(sw: u16) -> String {
    let (sw1, sw2) = ((sw >> 8) as u8, sw as u8);
    let fixed = match sw {
        0x9000 => "normal processing",
        0x6200 => "warning: no information given, NVM unchanged",
        0x6281 => "warning: part of returned data may be corrupted",
        0x6282 => "warning: end of file or record reached before reading Ne bytes",
        0x6283 => "warning: selected file deactivated",
        0x6300 => "warning: no information given, NVM changed (verification failed)",
        0x6381 => "warning: file filled up by the last write",
        0x6400 => "execution error: NVM unchanged",
        0x6500 => "execution error: NVM changed",
        0x6581 => "execution error: memory failure",
        0x6700 => "wrong length",
        0x6800 => "functions in CLA not supported",
        0x6881 => "logical channel not supported",
        0x6882 => "secure messaging not supported",
        0x6900 => "command not allowed",
        0x6981 => "command incompatible with file structure",
        0x6982 => "security status not satisfied",
        0x6983 => "authentication method blocked",
        0x6984 => "reference data not usable",
        0x6985 => "conditions of use not satisfied",
        0x6986 => "command not allowed (no current EF / wrong sequence)",
        0x6987 => "expected secure messaging data objects missing",
        0x6988 => "incorrect secure messaging data objects",
        0x6A00 => "wrong parameters P1-P2",
        0x6A80 => "incorrect parameters in the command data field",
        0x6A81 => "function not supported",
        0x6A82 => "file or application not found",
        0x6A83 => "record not found",
        0x6A84 => "not enough memory space in the file",
        0x6A85 => "Nc inconsistent with TLV structure",
        0x6A86 => "incorrect parameters P1-P2",
        0x6A87 => "Nc inconsistent with parameters P1-P2",
        0x6A88 => "referenced data or reference data not found",
        0x6A89 => "file already exists",
        0x6A8A => "DF name already exists",
        0x6B00 => "wrong parameters P1-P2 (offset outside the EF)",
        0x6D00 => "instruction code not supported or invalid",
        0x6E00 => "class not supported",
        0x6F00 => "no precise diagnosis",
        _ => "",
    };
    if !fixed.is_empty() {
        return fixed.to_string();
    }
    match sw1 {
        // Hex first, as the SW and the header show it; 00 stands for 256.
        0x61 if sw2 == 0 => "256 or more response bytes still available (GET RESPONSE)".into(),
        0x61 => format!("{sw2:02X} ({sw2}) response bytes still available (GET RESPONSE)"),
        0x6C if sw2 == 0 => "wrong Le: exact length is 00 (256)".into(),
        0x6C => format!("wrong Le: exact length is {sw2:02X} ({sw2})"),
        0x63 if sw2 & 0xF0 == 0xC0 => format!("verification failed, {} tries left", sw2 & 0x0F),
        0x62 | 0x63 => "warning (unlisted)".into(),
        0x64..=0x66 => "execution error (unlisted)".into(),
        0x67..=0x6F => "checking error (unlisted)".into(),
        _ => "proprietary status".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn catalogue_meanings() {
        assert_eq!(describe(0x9000), "normal processing");
        assert_eq!(describe(0x6112), "12 (18) response bytes still available (GET RESPONSE)");
        assert_eq!(describe(0x6100), "256 or more response bytes still available (GET RESPONSE)");
        assert_eq!(describe(0x6C08), "wrong Le: exact length is 08 (8)");
        assert_eq!(describe(0x63C2), "verification failed, 2 tries left");
        assert_eq!(describe(0x6982), "security status not satisfied");
        assert_eq!(class(0x6A80), SwClass::CheckingError);
        assert_eq!(class(0x6110), SwClass::Normal);
        assert_eq!(class(0x9100), SwClass::Proprietary);
        assert_eq!(class(0x6581), SwClass::ExecutionError);
    }
}
