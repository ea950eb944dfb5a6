//! Typed PN532 commands (UM0701-02 chapter 7) as the driver sends them, the answers it
//! parses, and the constants the simulator shares.

/// Command codes (PD0 of host frames); the answer's code is the command code + 1.
pub mod code {
    pub const DIAGNOSE: u8 = 0x00;
    pub const GET_FIRMWARE_VERSION: u8 = 0x02;
    pub const GET_GENERAL_STATUS: u8 = 0x04;
    pub const READ_REGISTER: u8 = 0x06;
    pub const WRITE_REGISTER: u8 = 0x08;
    pub const READ_GPIO: u8 = 0x0C;
    pub const WRITE_GPIO: u8 = 0x0E;
    pub const SET_SERIAL_BAUD_RATE: u8 = 0x10;
    pub const SET_PARAMETERS: u8 = 0x12;
    pub const SAM_CONFIGURATION: u8 = 0x14;
    pub const POWER_DOWN: u8 = 0x16;
    pub const RF_CONFIGURATION: u8 = 0x32;
    pub const IN_DATA_EXCHANGE: u8 = 0x40;
    pub const IN_COMMUNICATE_THRU: u8 = 0x42;
    pub const IN_DESELECT: u8 = 0x44;
    pub const IN_LIST_PASSIVE_TARGET: u8 = 0x4A;
    pub const IN_RELEASE: u8 = 0x52;
    pub const IN_SELECT: u8 = 0x54;
    pub const IN_AUTO_POLL: u8 = 0x60;
}

/// Name of a command code, for errors and logs.
pub fn name(c: u8) -> &'static str {
    match c {
        code::DIAGNOSE => "Diagnose",
        code::GET_FIRMWARE_VERSION => "GetFirmwareVersion",
        code::GET_GENERAL_STATUS => "GetGeneralStatus",
        code::READ_REGISTER => "ReadRegister",
        code::WRITE_REGISTER => "WriteRegister",
        code::READ_GPIO => "ReadGPIO",
        code::WRITE_GPIO => "WriteGPIO",
        code::SET_SERIAL_BAUD_RATE => "SetSerialBaudRate",
        code::SET_PARAMETERS => "SetParameters",
        code::SAM_CONFIGURATION => "SAMConfiguration",
        code::POWER_DOWN => "PowerDown",
        code::RF_CONFIGURATION => "RFConfiguration",
        code::IN_DATA_EXCHANGE => "InDataExchange",
        code::IN_COMMUNICATE_THRU => "InCommunicateThru",
        code::IN_DESELECT => "InDeselect",
        code::IN_LIST_PASSIVE_TARGET => "InListPassiveTarget",
        code::IN_RELEASE => "InRelease",
        code::IN_SELECT => "InSelect",
        code::IN_AUTO_POLL => "InAutoPoll",
        _ => "unknown command",
    }
}

/// Status byte of In* answers: bit 6 is MI (more information), bit 7 NAD present, the low
/// six bits the error code (§7.1).
pub const STATUS_MI: u8 = 0x40;
pub const STATUS_ERROR_MASK: u8 = 0x3F;
/// Tg byte of InDataExchange: bit 6 is MI (the host has more data to send).
pub const TG_MI: u8 = 0x40;

/// Error codes of the status byte (§7.1, table 37).
pub mod status {
    pub const OK: u8 = 0x00;
    pub const TIMEOUT: u8 = 0x01;
    pub const CRC: u8 = 0x02;
    pub const PARITY: u8 = 0x03;
    pub const BUFFER_TOO_SMALL: u8 = 0x07;
    pub const RF_PROTOCOL: u8 = 0x0B;
    pub const INVALID_PARAMETER: u8 = 0x10;
    pub const NOT_ACCEPTABLE: u8 = 0x27;
    pub const RELEASED: u8 = 0x29;
    pub const CARD_EXCHANGED: u8 = 0x2A;
    pub const CARD_DISAPPEARED: u8 = 0x2B;
}

/// Meaning of a status error code (low six bits).
pub fn status_name(s: u8) -> &'static str {
    match s & STATUS_ERROR_MASK {
        0x00 => "success",
        0x01 => "timeout: the target did not answer",
        0x02 => "CRC error",
        0x03 => "parity error",
        0x04 => "erroneous bit count during anticollision",
        0x05 => "framing error",
        0x06 => "abnormal bit collision",
        0x07 => "communication buffer too small",
        0x09 => "RF buffer overflow",
        0x0A => "RF field not switched on in time",
        0x0B => "RF protocol error",
        0x0D => "overheating",
        0x0E => "internal buffer overflow",
        0x10 => "invalid parameter",
        0x12 => "DEP: unsupported command",
        0x13 => "DEP: invalid data format",
        0x14 => "MIFARE authentication error",
        0x23 => "UID check byte wrong",
        0x25 => "DEP: invalid device state",
        0x26 => "operation not allowed",
        0x27 => "command not acceptable in this context",
        0x29 => "target released by the initiator",
        0x2A => "card exchanged",
        0x2B => "card disappeared",
        0x2C => "NFCID3 mismatch",
        0x2D => "over-current",
        0x2E => "NAD missing",
        _ => "unknown error",
    }
}

/// Largest DataOut / DataIn of one InDataExchange frame (§7.3.8): 262 bytes.
pub const DATA_EXCHANGE_MAX: usize = 262;

/// SAMConfiguration modes.
pub const SAM_NORMAL: u8 = 0x01;

/// RFConfiguration items.
pub mod rf {
    pub const FIELD: u8 = 0x01;
    pub const TIMINGS: u8 = 0x02;
    pub const MAX_RTY_COM: u8 = 0x04;
    pub const MAX_RETRIES: u8 = 0x05;
    pub const ANALOG_106A: u8 = 0x0A;
    pub const ANALOG_212_424: u8 = 0x0B;
    pub const ANALOG_TYPE_B: u8 = 0x0C;
    pub const ANALOG_ISO_DEP: u8 = 0x0D;

    /// Number of ConfigurationData bytes of an item, `None` for an unknown item.
    pub fn data_len(item: u8) -> Option<usize> {
        match item {
            FIELD | MAX_RTY_COM | ANALOG_TYPE_B => Some(1),
            TIMINGS | MAX_RETRIES | ANALOG_212_424 => Some(3),
            ANALOG_106A => Some(11),
            ANALOG_ISO_DEP => Some(9),
            _ => None,
        }
    }
}

/// SetParameters flags.
pub mod param {
    pub const NAD_USED: u8 = 0x01;
    pub const DID_USED: u8 = 0x02;
    pub const AUTO_ATR_RES: u8 = 0x04;
    pub const AUTO_RATS: u8 = 0x10;
    pub const ISO14443_4_PICC: u8 = 0x20;
    pub const REMOVE_PRE_POST: u8 = 0x40;
}

/// BrTy of InListPassiveTarget: 106 kbps ISO/IEC 14443 type A.
pub const BRTY_106A: u8 = 0x00;

/// SEL_RES (SAK) bit announcing an ISO/IEC 14443-4 compliant PICC.
pub const SAK_ISO14443_4: u8 = 0x20;

/// A host → PN532 command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// NumTst 0x00: communication line test, the PN532 echoes the data.
    DiagnoseEcho(Vec<u8>),
    /// NumTst 0x06: attention request / ISO 14443-4 card presence test.
    DiagnosePresence,
    GetFirmwareVersion,
    GetGeneralStatus,
    SamConfiguration {
        mode: u8,
        timeout: u8,
        irq: Option<u8>,
    },
    /// RF field on/off (item 0x01, AutoRFCA off).
    RfField(bool),
    /// MaxRetries (item 0x05): ATR_REQ retries, PSL retries, passive activation retries
    /// (0xFF: forever, 0x00: one try).
    RfMaxRetries {
        atr: u8,
        psl: u8,
        passive: u8,
    },
    SetParameters(u8),
    ReadRegister(Vec<u16>),
    WriteRegister(Vec<(u16, u8)>),
    /// One 106 kbps type A target (MaxTg 1, BrTy 0x00).
    InListPassiveTarget106A,
    /// Tg (bit 6 = MI, more data follows in the next frame) and DataOut.
    InDataExchange {
        tg: u8,
        data: Vec<u8>,
    },
    InDeselect(u8),
    InRelease(u8),
    InSelect(u8),
    PowerDown {
        wake_up_enable: u8,
    },
}

impl Command {
    pub fn code(&self) -> u8 {
        match self {
            Command::DiagnoseEcho(_) | Command::DiagnosePresence => code::DIAGNOSE,
            Command::GetFirmwareVersion => code::GET_FIRMWARE_VERSION,
            Command::GetGeneralStatus => code::GET_GENERAL_STATUS,
            Command::SamConfiguration { .. } => code::SAM_CONFIGURATION,
            Command::RfField(_) | Command::RfMaxRetries { .. } => code::RF_CONFIGURATION,
            Command::SetParameters(_) => code::SET_PARAMETERS,
            Command::ReadRegister(_) => code::READ_REGISTER,
            Command::WriteRegister(_) => code::WRITE_REGISTER,
            Command::InListPassiveTarget106A => code::IN_LIST_PASSIVE_TARGET,
            Command::InDataExchange { .. } => code::IN_DATA_EXCHANGE,
            Command::InDeselect(_) => code::IN_DESELECT,
            Command::InRelease(_) => code::IN_RELEASE,
            Command::InSelect(_) => code::IN_SELECT,
            Command::PowerDown { .. } => code::POWER_DOWN,
        }
    }

    /// Packet data: PD0 (the command code) and parameters, without the TFI.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut b = vec![self.code()];
        match self {
            Command::DiagnoseEcho(d) => {
                b.push(0x00);
                b.extend_from_slice(d);
            }
            Command::DiagnosePresence => b.push(0x06),
            Command::GetFirmwareVersion | Command::GetGeneralStatus => {}
            Command::SamConfiguration { mode, timeout, irq } => {
                b.extend_from_slice(&[*mode, *timeout]);
                b.extend(irq);
            }
            Command::RfField(on) => b.extend_from_slice(&[rf::FIELD, u8::from(*on)]),
            Command::RfMaxRetries { atr, psl, passive } => {
                b.extend_from_slice(&[rf::MAX_RETRIES, *atr, *psl, *passive])
            }
            Command::SetParameters(f) => b.push(*f),
            Command::ReadRegister(regs) => regs.iter().for_each(|r| b.extend_from_slice(&r.to_be_bytes())),
            Command::WriteRegister(regs) => regs.iter().for_each(|(r, v)| {
                b.extend_from_slice(&r.to_be_bytes());
                b.push(*v);
            }),
            Command::InListPassiveTarget106A => b.extend_from_slice(&[0x01, BRTY_106A]),
            Command::InDataExchange { tg, data } => {
                b.push(*tg);
                b.extend_from_slice(data);
            }
            Command::InDeselect(tg) | Command::InRelease(tg) | Command::InSelect(tg) => b.push(*tg),
            Command::PowerDown { wake_up_enable } => b.push(*wake_up_enable),
        }
        b
    }
}

/// GetFirmwareVersion answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Firmware {
    pub ic: u8,
    pub ver: u8,
    pub rev: u8,
    pub support: u8,
}

impl Firmware {
    /// The answer of a PN532 v1.6 (C106): IC 0x32, version 1, revision 6, support 0x07
    /// (ISO 14443 A, ISO 14443 B, ISO 18092).
    pub const PN532_V1_6: Firmware = Firmware { ic: 0x32, ver: 0x01, rev: 0x06, support: 0x07 };

    pub fn parse(b: &[u8]) -> Option<Firmware> {
        match b {
            [ic, ver, rev, support] => Some(Firmware { ic: *ic, ver: *ver, rev: *rev, support: *support }),
            _ => None,
        }
    }

    pub fn to_bytes(self) -> [u8; 4] {
        [self.ic, self.ver, self.rev, self.support]
    }
}

impl std::fmt::Display for Firmware {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PN5{:02X} v{}.{}", self.ic, self.ver, self.rev)
    }
}

/// An activated ISO/IEC 14443 type A target as InListPassiveTarget reports it (§7.3.5):
/// Tg, SENS_RES (ATQA, 2 bytes as the PN532 sends them), SEL_RES (SAK), NFCIDLength, NFCID1
/// and, for an ISO 14443-4 PICC, the ATS (its first byte TL counts the whole ATS).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetA {
    pub tg: u8,
    pub atqa: [u8; 2],
    pub sak: u8,
    pub uid: Vec<u8>,
    pub ats: Option<Vec<u8>>,
}

impl TargetA {
    /// TargetData of one target (Tg first).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut b = vec![self.tg, self.atqa[0], self.atqa[1], self.sak, self.uid.len() as u8];
        b.extend_from_slice(&self.uid);
        if let Some(ats) = &self.ats {
            b.extend_from_slice(ats);
        }
        b
    }

    /// Parse the answer data of InListPassiveTarget (NbTg, then the target), first target
    /// only. `Ok(None)` when no target was found.
    pub fn parse_list(b: &[u8]) -> Result<Option<TargetA>, String> {
        let (&nb, rest) = b.split_first().ok_or("empty InListPassiveTarget answer")?;
        if nb == 0 {
            return Ok(None);
        }
        if rest.len() < 5 {
            return Err(format!("target data too short ({} bytes)", rest.len()));
        }
        let (tg, atqa, sak, n) = (rest[0], [rest[1], rest[2]], rest[3], usize::from(rest[4]));
        let uid = rest.get(5..5 + n).ok_or("target data shorter than its NFCIDLength")?.to_vec();
        let after = &rest[5 + n..];
        let ats = match after.first() {
            None => None,
            Some(&tl) => {
                let tl = usize::from(tl);
                if tl == 0 || after.len() < tl {
                    return Err(format!("ATS length byte {tl} does not fit the {} bytes left", after.len()));
                }
                Some(after[..tl].to_vec())
            }
        };
        Ok(Some(TargetA { tg, atqa, sak, uid, ats }))
    }

    pub fn is_iso14443_4(&self) -> bool {
        self.sak & SAK_ISO14443_4 != 0 && self.ats.is_some()
    }

    /// Historical bytes of the ATS: after TL, T0 and the interface bytes T0 announces.
    pub fn historical_bytes(&self) -> Option<&[u8]> {
        let ats = self.ats.as_deref()?;
        if ats.len() < 2 {
            return Some(&[]);
        }
        let t0 = ats[1];
        let skip = 2 + (t0 >> 4 & 0x07).count_ones() as usize;
        Some(ats.get(skip..).unwrap_or(&[]))
    }

    /// The ATR a PC/SC reader reports for this contactless card (PC/SC part 3, §3.1.3.2.3.1):
    /// 3B 8n 80 01, the n ≤ 15 historical bytes of the ATS, TCK.
    pub fn pcsc_atr(&self) -> Vec<u8> {
        let hist = self.historical_bytes().unwrap_or(&[]);
        let hist = &hist[..hist.len().min(15)];
        let mut atr = vec![0x3B, 0x80 | hist.len() as u8, 0x80, 0x01];
        atr.extend_from_slice(hist);
        let tck = atr[1..].iter().fold(0u8, |a, b| a ^ b);
        atr.push(tck);
        atr
    }
}

/// Historical bytes of an ISO/IEC 7816-3 ATR (T0's low nibble counts them; Y bits say
/// which interface bytes come first). `None` for a malformed ATR.
pub fn atr_historical_bytes(atr: &[u8]) -> Option<&[u8]> {
    let t0 = *atr.get(1)?;
    let k = usize::from(t0 & 0x0F);
    let mut i = 2;
    let mut y = t0 >> 4;
    loop {
        let n = (y & 0x07).count_ones() as usize;
        let td = y & 0x08 != 0;
        i += n;
        if td {
            y = *atr.get(i)? >> 4;
            i += 1;
        } else {
            break;
        }
    }
    atr.get(i..i + k)
}
