//! A trace as a pcapng capture that Wireshark and tshark dissect as ISO 7816 APDUs.
//!
//! Wireshark's `iso7816` dissector is not bound to a link type of its own; it is reached
//! through Wireshark's "exported PDU" encapsulation (link type 252, `WIRESHARK_UPPER_PDU`),
//! whose per-packet tags name the dissector to call. The dissector tells a command from an
//! answer by the packet's direction (pcapng `epb_flags` inbound/outbound, plus the exported
//! PDU's own direction tag), so each exchange is two packets: the command (interface → card)
//! at `wall_time`, the answer (data + SW, card → interface) `duration_ns` later. An ATR row
//! becomes one card → interface packet, which the dissector shows as an ATR. One interface per
//! head, named after it; the row's number, kind, command name, card and steps ride in the
//! packet comment.

use crate::event::{Exchange, RowKind};
use pcap_file::pcapng::blocks::enhanced_packet::{EnhancedPacketBlock, EnhancedPacketOption};
use pcap_file::pcapng::blocks::interface_description::{InterfaceDescriptionBlock, InterfaceDescriptionOption};
use pcap_file::pcapng::PcapNgWriter;
use pcap_file::DataLink;
use std::borrow::Cow;
use std::io::Write;
use std::path::Path;
use std::time::Duration;

const TAG_END: u16 = 0;
const TAG_DISSECTOR_NAME: u16 = 12;
const TAG_P2P_DIRECTION: u16 = 35;
/// pcapng epb_flags direction bits.
const INBOUND: u32 = 1;
const OUTBOUND: u32 = 2;
/// Wireshark's P2P_DIR_SENT / P2P_DIR_RECV.
const P2P_SENT: u32 = 0;
const P2P_RECV: u32 = 1;

/// What an export wrote.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Exported {
    pub commands: usize,
    pub answers: usize,
    pub atrs: usize,
    pub interfaces: usize,
}

/// Write `rows` as pcapng to `out` (a temp file linked to `out` at the end: all or nothing,
/// and an existing `out` is never overwritten). Rows are written as they come, so a trace of
/// any length is exported in constant memory; the first row error stops the export.
pub fn export<E>(rows: impl IntoIterator<Item = Result<Exchange, E>>, out: &Path) -> Result<Exported, ExportError<E>> {
    let dir = out.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let name = out.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "trace.pcapng".into());
    let tmp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    let _ = std::fs::remove_file(&tmp);
    let written = (|| {
        let f = std::fs::OpenOptions::new().write(true).create_new(true).open(&tmp)?;
        let mut w = Writer::new(std::io::BufWriter::new(f))?;
        for x in rows {
            w.row(&x.map_err(ExportError::Row)?)?;
        }
        let (buf, summary) = w.finish()?;
        let f = buf.into_inner().map_err(|e| e.into_error())?;
        f.sync_all()?;
        std::fs::hard_link(&tmp, out)?;
        Ok(summary)
    })();
    let _ = std::fs::remove_file(&tmp);
    written
}

/// Why an export stopped: a row of the trace, or writing the file.
#[derive(Debug, thiserror::Error)]
pub enum ExportError<E> {
    #[error("{0}")]
    Row(E),
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

/// A pcapng stream being written, row by row.
pub struct Writer<W: Write> {
    ng: PcapNgWriter<W>,
    heads: Vec<String>,
    sum: Exported,
    // Rows that make no packet (power-off, remove, step) are told in the next packet's comment.
    pending: Vec<(usize, String)>,
}

impl<W: Write> Writer<W> {
    pub fn new(w: W) -> std::io::Result<Self> {
        Ok(Writer {
            ng: PcapNgWriter::new(w).map_err(io)?,
            heads: Vec::new(),
            sum: Exported::default(),
            pending: Vec::new(),
        })
    }

    pub fn row(&mut self, x: &Exchange) -> std::io::Result<()> {
        let iface = match self.heads.iter().position(|h| *h == x.head) {
            Some(i) => i,
            None => {
                self.heads.push(x.head.clone());
                self.ng
                    .write_pcapng_block(InterfaceDescriptionBlock {
                        linktype: DataLink::WIRESHARK_UPPER_PDU,
                        snaplen: 0,
                        options: vec![
                            InterfaceDescriptionOption::IfName(format!("cardbench head {}", x.head).into()),
                            InterfaceDescriptionOption::IfDescription(
                                "ISO 7816 APDUs exported from a cardbench trace".into(),
                            ),
                            // pcap-file writes timestamps in nanoseconds.
                            InterfaceDescriptionOption::IfTsResol(9),
                        ],
                    })
                    .map_err(io)?;
                self.sum.interfaces += 1;
                self.heads.len() - 1
            }
        };
        let mut comments: Vec<String> = Vec::new();
        self.pending.retain(|(i, c)| {
            if *i == iface {
                comments.push(c.clone());
            }
            *i != iface
        });
        comments.push(describe(x));
        let at = nanos(x);
        match x.kind {
            RowKind::Command | RowKind::GetResponse | RowKind::Resend6C | RowKind::InDoubt => {
                packet(&mut self.ng, iface, at, OUTBOUND, &x.command, comments)?;
                self.sum.commands += 1;
                if x.kind != RowKind::InDoubt {
                    let mut answer = x.response.clone();
                    answer.extend(x.sw.to_be_bytes());
                    packet(&mut self.ng, iface, at + x.duration_ns as u128, INBOUND, &answer, Vec::new())?;
                    self.sum.answers += 1;
                }
            }
            _ if !x.atr.is_empty() => {
                packet(&mut self.ng, iface, at, INBOUND, &x.atr, comments)?;
                self.sum.atrs += 1;
            }
            _ => self.pending.extend(comments.into_iter().map(|c| (iface, c))),
        }
        Ok(())
    }

    /// Flush and hand back the underlying writer with what was written.
    pub fn finish(self) -> std::io::Result<(W, Exported)> {
        let mut w = self.ng.into_inner();
        w.flush()?;
        Ok((w, self.sum))
    }
}

fn packet<W: Write>(
    ng: &mut PcapNgWriter<W>,
    iface: usize,
    at_ns: u128,
    dir: u32,
    payload: &[u8],
    comments: Vec<String>,
) -> std::io::Result<()> {
    let data = upper_pdu("iso7816", if dir == OUTBOUND { P2P_SENT } else { P2P_RECV }, payload);
    let mut options: Vec<EnhancedPacketOption> =
        comments.into_iter().map(|c| EnhancedPacketOption::Comment(c.into())).collect();
    options.push(EnhancedPacketOption::Flags(dir));
    ng.write_pcapng_block(EnhancedPacketBlock {
        interface_id: iface as u32,
        timestamp: Duration::from_nanos(at_ns.min(u64::MAX as u128) as u64),
        original_len: data.len() as u32,
        data: Cow::Owned(data),
        options,
    })
    .map_err(io)?;
    Ok(())
}

/// An exported-PDU packet: tags (big-endian type, length, value padded to 4 bytes; the length
/// counts the padding, as Wireshark writes it), then the payload for the named dissector.
fn upper_pdu(dissector: &str, p2p: u32, payload: &[u8]) -> Vec<u8> {
    let mut name = dissector.as_bytes().to_vec();
    name.resize(name.len().div_ceil(4) * 4, 0);
    let mut out = Vec::with_capacity(name.len() + payload.len() + 20);
    out.extend(TAG_DISSECTOR_NAME.to_be_bytes());
    out.extend((name.len() as u16).to_be_bytes());
    out.extend(&name);
    out.extend(TAG_P2P_DIRECTION.to_be_bytes());
    out.extend(4u16.to_be_bytes());
    out.extend(p2p.to_be_bytes());
    out.extend(TAG_END.to_be_bytes());
    out.extend(0u16.to_be_bytes());
    out.extend(payload);
    out
}

/// The packet comment: what the trace knows that the bytes do not say.
fn describe(x: &Exchange) -> String {
    let mut s = format!("cardbench row {} head {}", x.seq, x.head);
    if !x.card_id.is_empty() {
        s += &format!(" card {}", x.card_id);
    }
    s += &format!(" {}", x.kind.as_str());
    if let [cla, ins, ..] = x.command.as_slice() {
        s += &format!(" {}", crate::cmds::name(*cla, *ins));
    }
    for (k, v) in [("test_step", &x.test_step), ("protocol_step", &x.protocol_step), ("step", &x.step)] {
        if !v.is_empty() {
            s += &format!(" {k}={v}");
        }
    }
    if !x.note.is_empty() {
        s += &format!(" note: {}", x.note);
    }
    if !x.error.is_empty() {
        s += &format!(" error: {}", x.error);
    }
    s
}

fn nanos(x: &Exchange) -> u128 {
    x.wall.timestamp_nanos_opt().map_or(0, |n| n.max(0) as u128)
}

fn io(e: pcap_file::PcapError) -> std::io::Error {
    match e {
        pcap_file::PcapError::IoError(e) => e,
        e => std::io::Error::other(e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pcap_file::pcapng::{Block, PcapNgReader};

    fn row(seq: u64, head: &str, kind: RowKind, command: &str, response: &str, sw: u16) -> Exchange {
        Exchange {
            seq,
            wall: chrono::DateTime::from_timestamp(1_796_128_569, 847_224_000).unwrap(),
            head: head.into(),
            kind,
            command: hex::decode(command).unwrap(),
            response: hex::decode(response).unwrap(),
            sw,
            duration_ns: 5_000,
            ..Default::default()
        }
    }

    #[test]
    fn rows_become_directed_packets_on_one_interface_per_head() {
        let mut atr = row(1, "A", RowKind::PowerOn, "", "", 0);
        atr.atr = vec![0x3B, 0x89, 0x00];
        let rows = [
            atr,
            row(2, "A", RowKind::Step, "", "", 0),
            row(3, "A", RowKind::Command, "80B0000000", "", 0x6C16),
            row(4, "B", RowKind::InDoubt, "80D0000000", "", 0),
            row(5, "A", RowKind::Resend6C, "80B0000002", "0102", 0x9000),
        ];
        let mut buf = Vec::new();
        let mut w = Writer::new(&mut buf).unwrap();
        for r in &rows {
            w.row(r).unwrap();
        }
        let (_, sum) = w.finish().unwrap();
        assert_eq!(sum, Exported { commands: 3, answers: 2, atrs: 1, interfaces: 2 });

        let mut rd = PcapNgReader::new(&buf[..]).unwrap();
        let mut packets = Vec::new();
        let mut names = Vec::new();
        while let Some(b) = rd.next_block() {
            match b.unwrap() {
                Block::InterfaceDescription(i) => names.extend(i.options.iter().filter_map(|o| match o {
                    InterfaceDescriptionOption::IfName(n) => Some(n.to_string()),
                    _ => None,
                })),
                Block::EnhancedPacket(p) => {
                    let flags = p.options.iter().find_map(|o| match o {
                        EnhancedPacketOption::Flags(f) => Some(*f),
                        _ => None,
                    });
                    let comments: Vec<String> = p
                        .options
                        .iter()
                        .filter_map(|o| match o {
                            EnhancedPacketOption::Comment(c) => Some(c.to_string()),
                            _ => None,
                        })
                        .collect();
                    // The payload after the exported-PDU tags (name, direction, end: 24 bytes).
                    let payload = hex::encode_upper(&p.data[24..]);
                    packets.push((p.interface_id, flags, payload, p.timestamp.as_nanos(), comments));
                }
                _ => {}
            }
        }
        assert_eq!(names, ["cardbench head A", "cardbench head B"]);
        let t0 = 1_796_128_569_847_224_000u128;
        let short: Vec<_> = packets.iter().map(|(i, f, p, t, _)| (*i, *f, p.as_str(), t - t0)).collect();
        assert_eq!(
            short,
            [
                (0, Some(INBOUND), "3B8900", 0),
                (0, Some(OUTBOUND), "80B0000000", 0),
                (0, Some(INBOUND), "6C16", 5_000),
                (1, Some(OUTBOUND), "80D0000000", 0),
                (0, Some(OUTBOUND), "80B0000002", 0),
                (0, Some(INBOUND), "01029000", 5_000),
            ]
        );
        // The step row rides in the comment of the head's next packet, before that row's own.
        assert_eq!(packets[1].4.len(), 2);
        assert!(packets[1].4[0].starts_with("cardbench row 2 head A step"));
        assert!(packets[1].4[1].starts_with("cardbench row 3 head A command READ ALL"));
        assert!(packets[3].4[0].starts_with("cardbench row 4 head B in-doubt"));
    }

    #[test]
    fn exported_pdu_tags_pad_the_dissector_name() {
        let p = upper_pdu("iso7816", P2P_RECV, &[0x90, 0x00]);
        assert_eq!(&p[..4], &[0, 12, 0, 8]);
        assert_eq!(&p[4..12], b"iso7816\0");
        assert_eq!(&p[12..20], &[0, 35, 0, 4, 0, 0, 0, 1]);
        assert_eq!(&p[20..], &[0, 0, 0, 0, 0x90, 0x00]);
    }
}
