//! Seeded implementation defects of the reference card, for testing the conformance suite.
//!
//! Each `Defect` is a plausible firmware mistake in one applet. A card carries a set of them
//! (`VirtualCard::set_defects`, profile `[[card]] defects = [...]`); with the empty set (the
//! default) the card is the reference card, byte for byte. Every defect changes behaviour a
//! terminal can see through APDUs (status words, response bytes, state read back with
//! commands); `tests/defects.rs` proves it for each one and `docs/defects.md` describes them.

use std::fmt;
use std::str::FromStr;

macro_rules! defects {
    ($($(#[$doc:meta])* $v:ident = $name:literal, $applet:literal, $(violates [$($req:literal),* $(,)?],)? $desc:literal;)*) => {
        /// One seeded implementation defect.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum Defect {
            $($(#[$doc])* $v,)*
        }

        impl Defect {
            /// Every defect, in declaration order (GEN, PURSE, CPAY, XFER key update, XFER transfer).
            pub const ALL: &'static [Defect] = &[$(Defect::$v,)*];

            /// Kebab-case name, as written in a profile's `defects` list.
            pub fn name(self) -> &'static str {
                match self {
                    $(Defect::$v => $name,)*
                }
            }

            /// Applet whose rule the defect breaks: "GEN" (card-spec 1-5, all applets), "PURSE",
            /// "CPAY" or "XFER".
            pub fn applet(self) -> &'static str {
                match self {
                    $(Defect::$v => $applet,)*
                }
            }

            /// One sentence: what the defective card does differently.
            pub fn description(self) -> &'static str {
                match self {
                    $(Defect::$v => $desc,)*
                }
            }

            /// Requirement IDs of docs/card-spec.md the defect breaks (`violates [...]` in the
            /// table below; tests/suite.rs checks them against the spec and the suite).
            pub fn violates(self) -> &'static [&'static str] {
                match self {
                    $(Defect::$v => &[$($($req),*)?],)*
                }
            }
        }
    };
}

// An entry: `Variant = "kebab-name", "APPLET", violates ["XFER-8.1-R3", …], "what it does";`
// (`violates` names the requirements of docs/card-spec.md the mistake breaks, as docs/defects.md's
// "Violates" column does).
defects! {
    // ---- GEN (card-spec 1-5: AIDs and SELECT, CLA, processing order, delivery and GET
    // RESPONSE, what SELECT and resets clear, NVM rules, personalization after LOCK) ----
    CpayXferAidsSwapped = "cpay-xfer-aids-swapped", "GEN", violates ["GEN-1.1-R1"],
        "the AIDs of CPAY and XFER are swapped: A0000007770002 selects XFER and A0000007770003 selects CPAY";
    ReadAllInEveryApplet = "read-all-in-every-applet", "GEN", violates ["GEN-1.1-R3"],
        "READ ALL (80 B0) is served whatever applet is selected, not only in PURSE";
    SelectKeepsRam = "select-keeps-ram", "GEN", violates ["GEN-1.7-R5", "GEN-1.7-R6", "GEN-1.7-R7"],
        "a successful SELECT switches the applet but keeps the sessions: verified CPAY reader and nonce, key-update permission, send session";
    SelectUnknownAidDeselects = "select-unknown-aid-deselects", "GEN", violates ["GEN-1.7-R8"],
        "SELECT of an unknown AID (6A82) deselects the current applet and ends its sessions";
    SelectP2Unchecked = "select-p2-unchecked", "GEN", violates ["GEN-1.7-R1"],
        "SELECT checks P1 only: any P2 is accepted";
    SelectPartialAid = "select-partial-aid", "GEN", violates ["GEN-1.7-R2"],
        "SELECT matches its data as the start of an AID (partial DF name): A00000077700 selects PURSE";
    SelectReturnsFci = "select-returns-fci", "GEN", violates ["GEN-1.7-R3"],
        "SELECT answers the AID as response data (a minimal FCI) instead of no data";
    SelectInsideApplet = "select-inside-applet", "GEN", violates ["GEN-1.6-R5", "GEN-1.7-R4"],
        "with an applet selected, SELECT is handed to the applet's dispatch (CLA 00 with INS A4 answers 6D00); it only works with no applet selected";
    ResetKeepsSelection = "reset-keeps-selection", "GEN", violates ["GEN-2.1-R2"],
        "the selected applet is kept across a reset or power cycle (kept where power-on does not clear it)";
    ResetKeepsGetResponse = "reset-keeps-get-response", "GEN", violates ["GEN-2.1-R3"],
        "the bytes kept for GET RESPONSE survive a reset or power cycle";
    UnknownCla6D00 = "unknown-cla-6d00", "GEN", violates ["GEN-1.2-R4", "GEN-1.6-R12"],
        "a CLA other than 00 and 80 answers 6D00 instead of 6E00";
    ClaNotBound = "cla-not-bound", "GEN", violates ["GEN-1.2-R1", "GEN-1.2-R2", "GEN-1.6-R8"],
        "the applets accept CLA 00 and 80 for every INS (no CLA-per-INS check)";
    PersoAnyCla = "perso-any-cla", "GEN", violates ["GEN-1.2-R3"],
        "the personalization commands are also recognized with CLA 00";
    PersoNeedsApplet = "perso-needs-applet", "GEN", violates ["GEN-1.6-R6"],
        "with no applet selected, the personalization commands answer 6986 like applet commands";
    NoApplet6D00 = "no-applet-6d00", "GEN", violates ["GEN-1.6-R7"],
        "with no applet selected, applet commands answer 6D00 instead of 6986";
    UnknownInsBeforeP1p2 = "unknown-ins-before-p1p2", "GEN", violates ["GEN-1.6-R9"],
        "an INS the applet does not know answers 6D00 before P1-P2 are checked (80 FF 01 00 gets 6D00, not 6A86)";
    UnknownIns6A81 = "unknown-ins-6a81", "GEN", violates ["GEN-1.6-R11", "GEN-4-R1"],
        "an INS the selected applet does not know answers 6A81 (function not supported) instead of 6D00";
    RefusalWithData = "refusal-with-data", "GEN", violates ["GEN-2.2-R1"],
        "a 6D00 refusal of an unknown INS carries one data byte (the INS echoed)";
    GetResponseNeedsApplet = "get-response-needs-applet", "GEN", violates ["GEN-1.6-R3"],
        "GET RESPONSE with no applet selected answers 6986 instead of the kept bytes";
    UnparsableClearsGetResponse = "unparsable-clears-get-response", "GEN", violates ["GEN-1.6-R2"],
        "an APDU that does not parse (6700) also discards the bytes kept for GET RESPONSE";
    LenientApduParse = "lenient-apdu-parse", "GEN", violates ["GEN-1.6-R1"],
        "bytes after Le are ignored instead of making the APDU unparsable (6700)";
    GetResponseNotCleared = "get-response-not-cleared", "GEN", violates ["GEN-1.6-R4", "GEN-2.4-R3"],
        "commands other than GET RESPONSE do not discard the bytes kept for GET RESPONSE";
    ExtendedApdu6700 = "extended-apdu-6700", "GEN", violates ["GEN-1.6-R13"],
        "extended-length APDUs are refused with 6700";
    GetResponseEmpty9000 = "get-response-empty-9000", "GEN", violates ["GEN-2.4-R3"],
        "GET RESPONSE with nothing kept answers 9000 with no data instead of 6986";
    GetResponseShort9000 = "get-response-short-9000", "GEN", violates ["GEN-2.4-R4"],
        "GET RESPONSE with Le larger than what is kept answers the kept bytes with 9000 instead of 6Cxx";
    GetResponseP1p2Unchecked = "get-response-p1p2-unchecked", "GEN", violates ["GEN-2.4-R2"],
        "GET RESPONSE ignores P1-P2 instead of answering 6A86";
    GetResponseDropsRest = "get-response-drops-rest", "GEN", violates ["GEN-2.4-R5"],
        "GET RESPONSE with Le smaller than what is kept answers the first Le bytes with 9000 and drops the rest";
    GetResponseData6700 = "get-response-data-6700", "GEN", violates ["GEN-2.4-R1"],
        "GET RESPONSE with a data field answers 6700 instead of ignoring the data";
    Case1DataNo61 = "case1-data-no-61xx", "GEN", violates ["GEN-2.3-R3"],
        "a command sent without Le (case 1 or 3) that produces data answers data || 9000 instead of 61xx";
    T0Case4Empty6100 = "t0-case4-empty-6100", "GEN", violates ["GEN-2.3-R1"],
        "T=0: a case-4 command that succeeds with no response data answers 6100 instead of 9000";
    T0WrongLeNo6C = "t0-wrong-le-no-6c", "GEN", violates ["GEN-2.3-R2"],
        "T=0: a case-2 command with an Le other than the exact length is answered as on T=1 (data and 9000, or Le bytes and 61xx) instead of 6Cxx";
    T0ExactLe61 = "t0-exact-le-61xx", "GEN", violates ["GEN-2.3-R4"],
        "T=0: a case-2 command with the exact Le answers 61xx (data kept for GET RESPONSE) instead of the data";
    LongResponseTruncated = "long-response-truncated", "GEN", violates ["GEN-2.3-R5"],
        "a response longer than Ne is cut to its first Ne bytes with 9000 instead of 61xx with the rest kept";
    PsoKeepsNonce = "pso-keeps-nonce", "GEN", violates ["GEN-3.2-R2"],
        "PSO VERIFY CERTIFICATE does not discard the SIGN PAYMENT nonce";
    RefusedCommandClearsRam = "refused-command-clears-ram", "GEN", violates ["GEN-3.2-R5"],
        "a command refused by the common checks (6D00, 6A86) ends every session, as a SELECT would";
    SendLogInRam = "send-log-in-ram", "GEN", violates ["GEN-3.1-R1"],
        "the send log is cleared at power-on (kept in RAM): after a reset CANCEL PROOF no longer finds a session";
    ReceivePermissionRefusalStores = "receive-permission-refusal-stores", "GEN", violates ["GEN-3.3-R1"],
        "VALUE RECEIVE PERMISSION stores the pending credit before its overflow check and keeps it when it answers 6A84";
    LockChecksLockedFirst = "lock-checks-locked-first", "GEN", violates ["GEN-5.2-R1"],
        "PERSO LOCK checks the lock state before P1-P2: a locked card answers 6986 to 80 EE 01 00 instead of 6A86";
    RelockAccepted = "relock-accepted", "GEN", violates ["GEN-5.2-R2"],
        "PERSO LOCK on a locked card answers 9000 instead of 6986";
    PersoStatusP1p2Unchecked = "perso-status-p1p2-unchecked", "GEN", violates ["GEN-5.3-R1"],
        "PERSO STATUS ignores P1-P2 instead of answering 6A86";
    PersoStatusInverted = "perso-status-inverted", "GEN", violates ["GEN-5.3-R2"],
        "PERSO STATUS answers 00 for a locked card and 01 for an unlocked one";
    PersoPutObjectCheckedFirst = "perso-put-object-checked-first", "GEN", violates ["GEN-5.4-R1"],
        "after LOCK, PERSO PUT checks P2 and the object before the lock: an unknown object or P2 gets 6A86 instead of 6986";

    /// Not a rule a case can fail on: the card stops answering, and the bench must end the
    /// case at the head's deadline and go on (docs/defects.md, "A mute card").
    MuteAfterSelect = "mute-after-select", "GEN",
        "after answering a SELECT with 9000 the card hangs: no later command gets any answer until the card is powered off";
    // ---- PURSE (seed 000 S1-S2, card-spec 6.4) ----
    CounterNotDecremented = "counter-not-decremented", "PURSE", violates ["PURSE-6.4-R3", "PURSE-6.4-R4"],
        "WRITE VALUE writes amount and date but leaves the backward counter unchanged (and answers the unchanged counter)";
    CounterDecrementedTwice = "counter-decremented-twice", "PURSE", violates ["PURSE-6.4-R3", "PURSE-6.4-R4"],
        "WRITE VALUE decrements the backward counter by two instead of one";
    CounterWraps = "counter-wraps", "PURSE", violates ["PURSE-6.4-R2"],
        "WRITE VALUE with the counter at 0 is accepted and the counter wraps to FFFFFFFF instead of 6A84";
    CounterSettableAfterLock = "counter-settable-after-lock", "PURSE", violates ["PURSE-6-R1"],
        "PERSO PUT 10 (backward counter) is still accepted after PERSO LOCK, so the counter can be set back up";
    CounterDecrementedOnRefusedWrite = "counter-decremented-on-refused-write", "PURSE", violates ["PURSE-6.4-R1"],
        "WRITE VALUE decrements the counter in its own transaction before the length check, so a refused write (6700) still costs a counter step";
    // PURSE responses and the other checks (card-spec 6.2-6.6), one rule each.
    ReadAllRejectsData = "read-all-rejects-data", "PURSE", violates ["PURSE-6.2-R1"],
        "READ ALL sent with a data field answers 6700 instead of ignoring the data";
    ReadAllDateBeforeAmount = "read-all-date-before-amount", "PURSE", violates ["PURSE-6.2-R2"],
        "READ ALL lays out the value area date first (the order of the signed message) instead of amount then date";
    ReadAllPadsEmptySignature = "read-all-pads-empty-signature", "PURSE", violates ["PURSE-6.2-R3"],
        "READ ALL of a never-signed record gives signature length 40 and 64 zero bytes instead of length 00 and nothing";
    ReadAllTruncatedAt256 = "read-all-truncated-at-256", "PURSE", violates ["PURSE-6.2-R4"],
        "READ ALL builds the record in a 256-byte buffer: a longer record (signature and certificate) is cut at 256 bytes";
    ReadFieldDateBeforeAmount = "read-field-date-before-amount", "PURSE", violates ["PURSE-6.3-R1"],
        "READ FIELD 03 (PURSE) answers date || amount instead of amount || date";
    ReadFieldP2Ignored = "read-field-p2-ignored", "PURSE", violates ["PURSE-6.3-R2"],
        "READ FIELD (PURSE) ignores P2: P2 other than 00 answers the field instead of 6A86";
    ReadFieldEmptyAreaZeros = "read-field-empty-area-zeros", "PURSE", violates ["PURSE-6.3-R3"],
        "READ FIELD 04 of a never-written signature area answers 64 zero bytes and 9000 instead of 6A88";
    WriteValueExhaustionFirst = "write-value-exhaustion-checked-first", "PURSE", violates ["PURSE-6.4-R1"],
        "WRITE VALUE checks the exhausted counter before the length: a wrong-length write on an exhausted purse answers 6A84 instead of 6700";
    WriteValueAnswersOldCounter = "write-value-answers-old-counter", "PURSE", violates ["PURSE-6.4-R4"],
        "WRITE VALUE decrements the counter but answers the counter from before the decrement";
    WriteValueClearsSignature = "write-value-clears-signature", "PURSE", violates ["PURSE-6.4-R5"],
        "WRITE VALUE empties the signature area in the same commit instead of leaving it alone";
    WriteSignatureAnyLength = "write-signature-any-length", "PURSE", violates ["PURSE-6.5-R1"],
        "WRITE SIGNATURE accepts and stores any data of 1 to 64 bytes instead of answering 6700 for Nc != 64";
    WriteSignatureIntoCertificate = "write-signature-into-certificate-area", "PURSE", violates ["PURSE-6.5-R2"],
        "WRITE SIGNATURE stores its data in the certificate area (a copy-paste of WRITE CERTIFICATE); the signature area keeps its content";
    WriteCertificateAcceptsEmpty = "write-certificate-accepts-empty", "PURSE", violates ["PURSE-6.6-R1"],
        "WRITE CERTIFICATE with Nc = 0 answers 9000 and empties the certificate area instead of 6700";
    WriteCertificateParsed = "write-certificate-parsed", "PURSE", violates ["PURSE-6.6-R2"],
        "WRITE CERTIFICATE parses the data as a CV certificate and refuses anything else with 6A80 instead of storing it as is";
    // ---- CPAY (seed 000 prior art S21-S24, S38; card-spec 7.3-7.5) ----
    CpayReaderSignatureUnchecked = "cpay-reader-signature-unchecked", "CPAY", violates ["CPAY-7.3-R5"],
        "PSO VERIFY CERTIFICATE does not verify the center's signature on the reader certificate: any well-formed payment-machine certificate is accepted";
    CpayReaderRoleUnchecked = "cpay-reader-role-unchecked", "CPAY", violates ["CPAY-7.3-R6"],
        "PSO VERIFY CERTIFICATE accepts a center-signed certificate of any role (charge machine, signing card) as a reader";
    CpaySignsZeroRandom = "cpay-signs-zero-random", "CPAY", violates ["CPAY-7.4-R6"],
        "SIGN PAYMENT signs 16 zero bytes in place of the reader's random, so its signature can be replayed";
    CpayNonceReusable = "cpay-nonce-reusable", "CPAY", violates ["CPAY-7.5-R2", "CPAY-7.5-R3"],
        "DEBIT does not consume the SIGN PAYMENT nonce: the same authorized DEBIT can be replayed";
    CpayDebitSignatureUnchecked = "cpay-debit-signature-unchecked", "CPAY", violates ["CPAY-7.5-R4"],
        "DEBIT does not verify the reader's signature over the nonce: any 64 bytes authorize a debit";
    CpayOverdraft = "cpay-overdraft", "CPAY", violates ["CPAY-7.5-R6"],
        "DEBIT with price > amount is accepted and the amount wraps below zero instead of 6A84";
    // CPAY responses, check order and RAM rules (card-spec 7.2-7.5), one rule each.
    CpayReadFieldPurseValue = "cpay-read-field-purse-value", "CPAY", violates ["CPAY-7.2-R1"],
        "CPAY READ FIELD 03 answers the PURSE value area (shared READ FIELD table) instead of the CPAY value";
    CpayReadFieldCounter = "cpay-read-field-counter", "CPAY", violates ["CPAY-7.2-R2"],
        "CPAY READ FIELD 02 answers the PURSE backward counter (shared READ FIELD table) instead of 6A86";
    CpayPsoClearsBeforeP1P2 = "cpay-pso-clears-before-p1p2", "CPAY", violates ["CPAY-7.3-R1"],
        "PSO VERIFY CERTIFICATE clears the verified reader and the nonce before checking P1-P2, so a 6A86 ends the session";
    CpayRefusedPsoKeepsReader = "cpay-refused-pso-keeps-reader", "CPAY", violates ["CPAY-7.3-R2", "GEN-3.2-R1"],
        "PSO VERIFY CERTIFICATE replaces the verified reader only on success: after a refused certificate the earlier reader and nonce stay usable";
    CpayPsoUnparsable6982 = "cpay-pso-unparsable-6982", "CPAY", violates ["CPAY-7.3-R4"],
        "PSO VERIFY CERTIFICATE answers 6982 instead of 6A80 for data that is not a certificate";
    CpayReaderSingleUse = "cpay-reader-single-use", "CPAY", violates ["CPAY-7.3-R8"],
        "a successful DEBIT also ends the verified reader: the next SIGN PAYMENT answers 6986 without a new PSO VERIFY CERTIFICATE";
    CpayReaderExpiryChecked = "cpay-reader-expiry-checked", "CPAY", violates ["CPAY-7.3-R9", "GEN-1.3-R1"],
        "PSO VERIFY CERTIFICATE refuses (6982) a reader certificate that expired before the card's CPAY value date, although the card checks no expiry";
    CpaySignReaderCheckedFirst = "cpay-sign-reader-checked-first", "CPAY", violates ["CPAY-7.4-R1"],
        "SIGN PAYMENT checks for a verified reader before the length: a wrong-length SIGN PAYMENT without reader answers 6986 instead of 6700";
    CpaySignWithoutReader = "cpay-sign-without-reader", "CPAY", violates ["CPAY-7.4-R2"],
        "SIGN PAYMENT signs without a verified reader instead of answering 6986";
    CpaySignAmountBeforeDate = "cpay-sign-amount-before-date", "CPAY", violates ["CPAY-7.4-R4"],
        "the SIGN PAYMENT response carries amount then date (the order of READ FIELD 03) instead of date then amount; the signature is still over M_pay";
    CpayNonceNotReplaced = "cpay-nonce-not-replaced", "CPAY", violates ["CPAY-7.4-R5"],
        "SIGN PAYMENT keeps an outstanding nonce instead of replacing it: the next SIGN PAYMENT of the session answers the same nonce";
    CpayDebitNonceConsumedByBadLength = "cpay-debit-nonce-consumed-by-bad-length", "CPAY", violates ["CPAY-7.5-R1"],
        "DEBIT consumes the nonce before the length check, so a DEBIT refused with 6700 costs the nonce";
    CpayDebitZeroPrice = "cpay-debit-zero-price", "CPAY", violates ["CPAY-7.5-R5"],
        "DEBIT with price 0 (reader-signed) answers 9000 and moves the value date instead of 6A80";
    CpayDebitKeepsDate = "cpay-debit-keeps-date", "CPAY", violates ["CPAY-7.5-R7"],
        "DEBIT takes the price from the amount but does not write the DEBIT's date";
    CpayNonceKeptOnValueRefusal = "cpay-nonce-kept-on-value-refusal", "CPAY", violates ["CPAY-7.5-R2"],
        "a DEBIT refused for its price (6A80 price 0, 6A84 insufficient value) puts the nonce back, so the authorization can be retried";
    // ---- XFER key update (seed 002 S1001-S8105A, card-spec 8.4-8.6) ----
    UpdatePermissionReusable = "update-permission-reusable", "XFER", violates ["XFER-8.6-R2"],
        "UPDATE TRANSFER KEY does not consume the key-update permission: after a refused attempt the same update random is still accepted";
    UpdateRandomUnchecked = "update-random-unchecked", "XFER", violates ["XFER-8.6-R10"],
        "UPDATE TRANSFER KEY (modes 01/03) does not compare the decrypted random with the permission's random: an old key blob is accepted";
    TkidRangeUnchecked = "tkid-range-unchecked", "XFER", violates ["XFER-8.6-R12"],
        "UPDATE TRANSFER KEY skips the transfer-key ID range check: an older transfer key (rollback) is accepted";
    TkidAcceptsCurrent = "tkid-accepts-current", "XFER", violates ["XFER-8.6-R12"],
        "UPDATE TRANSFER KEY range check is off by one at the bottom: a new ID equal to the current one is accepted";
    TkidLimitOffByOne = "tkid-limit-off-by-one", "XFER", violates ["XFER-8.6-R12"],
        "UPDATE TRANSFER KEY range check is off by one at the top: a new ID equal to the upper limit + 1 is accepted";
    UkidLimitUnchecked = "ukid-limit-unchecked", "XFER", violates ["XFER-8.6-R13"],
        "UPDATE TRANSFER KEY mode 04 does not range-check the new update-key ID (current < new <= limit)";
    PeerCertUnchecked = "peer-cert-unchecked", "XFER", violates ["XFER-8.4-R6", "XFER-8.5-R5"],
        "public modes 02/04: the peer certificate's CA signature is not verified, so any well-formed transfer-card certificate is accepted (and GET TRANSFER KEY encrypts the transfer key to its key)";
    MultiKeyUnauthenticated = "multi-key-unauthenticated", "XFER", violates ["XFER-8.6-R8"],
        "UPDATE TRANSFER KEY mode 03 also accepts an unprotected 20-byte blob random || key ID, switching the key slot without the update key";
    // ---- XFER value transfer (seed 002 S2001-S2105B, card-spec 8.7-8.10) ----
    SendChallengeUnchecked = "send-challenge-unchecked", "XFER", violates ["XFER-8.9-R5"],
        "VALUE SEND does not verify the transmission challenge before committing the debit";
    DebitAtSendPermission = "debit-at-send-permission", "XFER", violates ["XFER-8.7-R8", "XFER-9.2-R1"],
        "the tentative debit is committed to NVM at VALUE SEND PERMISSION instead of at VALUE SEND, so an abandoned transfer loses value";
    CreditAtReceivePermission = "credit-at-receive-permission", "XFER", violates ["XFER-8.8-R9", "XFER-9.2-R7"],
        "VALUE RECEIVE PERMISSION commits the credit immediately instead of keeping it pending until the reception challenge";
    ChallengeOmitsDate = "challenge-omits-date", "XFER", violates ["XFER-8.8-R1", "XFER-8.9-R1"],
        "the transmission and reception challenges are MACed over tag, paid value and random without the date";
    OverdraftAllowed = "overdraft-allowed", "XFER", violates ["XFER-8.7-R7"],
        "VALUE SEND PERMISSION and VALUE SEND do not check balance >= paid; the balance wraps below zero";
    BalanceCapUnchecked = "balance-cap-unchecked", "XFER", violates ["XFER-8.8-R8"],
        "VALUE RECEIVE PERMISSION and VALUE RECEIVE do not check the balance cap or u32 overflow";
    ValidityIgnored = "validity-ignored", "XFER", violates ["XFER-8.7-R6", "XFER-8.8-R6"],
        "VALUE SEND / RECEIVE PERMISSION accept a transaction date after the card's term of validity";
    PendingCreditOverwritten = "pending-credit-overwritten", "XFER", violates ["XFER-8.8-R7"],
        "VALUE RECEIVE PERMISSION overwrites a credit that is still pending instead of answering 6986";
    ReceiveReplay = "receive-replay", "XFER", violates ["XFER-8.10-R7", "XFER-9.2-R9"],
        "VALUE RECEIVE credits but does not clear the pending credit, so the same reception challenge credits again";
    CancelProofUnchecked = "cancel-proof-unchecked", "XFER", violates ["XFER-8.12-R4"],
        "CANCEL PENDING CREDIT does not verify the sending card's cancel proof: any 16 bytes cancel a pending credit, also one whose debit was committed";
    // ---- XFER requirement matrix (card-spec §8-§9; issue 12): one firmware mistake each ----
    InfoSlotIdsPadded = "info-slot-ids-padded", "XFER", violates ["XFER-8.1-R1", "XFER-8.1-R8"],
        "GET CARD INFO always writes eight slot-ID entries (zeros for unused ones) after the slot count, so the card information is 66 bytes instead of 34 + 4n";
    InfoCertIsCpayCert = "info-cert-is-cpay-cert", "XFER", violates ["XFER-8.1-R2"],
        "GET CARD INFO P1 = 01 answers the CPAY card certificate (role 05) instead of the XFER one";
    InfoCardIdSerialOnly = "info-card-id-serial-only", "XFER", violates ["XFER-8.1-R3", "GEN-1.1-R2"],
        "GET CARD INFO writes only the card ID's last 4 bytes (its serial), right-aligned after 4 zero bytes";
    InfoLimitsSwapped = "info-limits-swapped", "XFER", violates ["XFER-8.1-R4"],
        "GET CARD INFO writes the transfer-key ID limit at offset 24 and the update-key ID limit at offset 28";
    InfoFlagsShifted = "info-flags-shifted", "XFER", violates ["XFER-8.1-R5", "XFER-8.1-R6", "XFER-8.1-R7"],
        "GET CARD INFO numbers the flag bits from 1: update key 02, card key 04, credit pending 08, last debit 10";
    P2IgnoredByInfoAndReadState = "p2-ignored-by-info-and-read-state", "XFER", violates ["XFER-8.1-R9", "XFER-8.11-R3"],
        "GET CARD INFO and READ TRANSFER STATE look at P1 only: any P2 is accepted instead of 6A86";
    ReadsEndSendSession = "reads-end-send-session", "XFER", violates ["XFER-8.1-R11", "XFER-8.11-R5", "XFER-9.2-R6"],
        "GET CARD INFO and READ TRANSFER STATE reset the XFER RAM, so they end a send session";
    TransportAadWithoutMode = "transport-aad-without-mode", "XFER", violates ["XFER-8.3-R1"],
        "the common/multi key-transport AE (seal and open) uses the AAD \"CBXFERTK\" without the mode byte";
    XferRandomsConstant = "xfer-randoms-constant", "XFER", violates ["XFER-8.3-R2", "XFER-8.4-R1", "XFER-8.7-R1", "XFER-8.8-R2"],
        "every XFER random (update random, AE IV, rnd_send, rnd_recv) is drawn but replaced by one derived from the card ID, the same every time";
    TransportSignatureWithoutRandom = "transport-signature-without-random", "XFER", violates ["XFER-8.3-R3"],
        "GET TRANSFER KEY (modes 02/04) signs \"CBXFERTK\" || mode || ct without the update random";
    PermissionDroppedBeforeModeCheck = "permission-dropped-before-mode-check", "XFER", violates ["XFER-8.4-R2", "XFER-8.6-R1"],
        "KEY UPDATE PERMISSION and UPDATE TRANSFER KEY drop the key-update permission before checking P1-P2, so a 6A86 loses it";
    PermissionKeptOnRefusal = "permission-kept-on-refusal", "XFER", violates ["XFER-8.4-R3", "GEN-3.2-R3"],
        "KEY UPDATE PERMISSION replaces the earlier permission only when it succeeds: a refused one leaves the earlier permission usable";
    CertParseError6982 = "cert-parse-error-6982", "XFER", violates ["XFER-8.4-R5", "XFER-8.5-R5"],
        "a peer certificate that does not parse (or is absent) answers 6982 instead of 6A80 in KEY UPDATE PERMISSION and GET TRANSFER KEY";
    KeyUpdateLengthsLenient = "key-update-lengths-lenient", "XFER", violates ["XFER-8.4-R8", "XFER-8.5-R3"],
        "modes 01/03: KEY UPDATE PERMISSION ignores data and GET TRANSFER KEY takes the first 16 bytes of longer data instead of 6700";
    PermissionModeNotBound = "permission-mode-not-bound", "XFER", violates ["XFER-8.4-R10", "XFER-8.6-R2"],
        "UPDATE TRANSFER KEY accepts a key-update permission given for another mode";
    MultiBlobCarriesKey = "multi-blob-carries-key", "XFER", violates ["XFER-8.5-R1", "XFER-8.3-R1"],
        "GET TRANSFER KEY mode 03 seals the transfer key too (mode 01's plaintext): a 68-byte blob that card A refuses";
    TransferKeyModeUnchecked = "transfer-key-mode-unchecked", "XFER", violates ["XFER-8.5-R2"],
        "GET TRANSFER KEY accepts any P1 and P2, treating an unknown mode as mode 01";
    TransferKeyClearsPermission = "transfer-key-clears-permission", "XFER", violates ["XFER-8.5-R6"],
        "GET TRANSFER KEY discards the card's own key-update permission";
    UpdatePublicMinLength64 = "update-public-min-length-64", "XFER", violates ["XFER-8.6-R3"],
        "UPDATE TRANSFER KEY (modes 02/04) checks only Nc >= 64 (the signature), so a 64-160 byte message answers 6982 instead of 6700";
    UpdateSignatureUnchecked = "update-signature-unchecked", "XFER", violates ["XFER-8.6-R4"],
        "UPDATE TRANSFER KEY (modes 02/04) does not verify card B's signature over the ciphertext and the update random";
    UpdateDecryptError6A80 = "update-decrypt-error-6a80", "XFER", violates ["XFER-8.6-R6"],
        "UPDATE TRANSFER KEY (modes 02/04) answers 6A80 instead of 6982 when the ECIES decryption fails";
    MultiMovesIdOnly = "multi-moves-id-only", "XFER", violates ["XFER-8.6-R11"],
        "UPDATE TRANSFER KEY mode 03 moves the transfer-key ID but keeps the old key, and needs no preloaded key with the new ID";
    MultiKeyNotLoaded = "multi-key-not-loaded", "XFER", violates ["XFER-8.6-R14"],
        "UPDATE TRANSFER KEY mode 03 checks the preloaded key with the new ID but commits only the ID: the old transfer key stays";
    SendSessionKeptOnRefusal = "send-session-kept-on-refusal", "XFER", violates ["XFER-8.7-R2", "GEN-3.2-R4"],
        "VALUE SEND PERMISSION discards the earlier send session only when it succeeds";
    TransferLengthsLenient = "transfer-lengths-lenient", "XFER", violates ["XFER-8.7-R3", "XFER-8.8-R3", "XFER-8.10-R2", "XFER-8.12-R1", "XFER-8.13-R2"],
        "the value-transfer commands (permissions, VALUE RECEIVE, CANCEL PENDING CREDIT, CANCEL PROOF) take longer data and ignore the excess instead of 6700";
    ZeroTransferAllowed = "zero-transfer-allowed", "XFER", violates ["XFER-8.7-R5", "XFER-8.8-R5"],
        "VALUE SEND / RECEIVE PERMISSION accept a paid value of 0 instead of 6A80";
    SendLogDropsNewest = "send-log-drops-newest", "XFER", violates ["XFER-8.7-R8"],
        "with four sessions logged, VALUE SEND PERMISSION overwrites the newest log entry instead of dropping the oldest";
    SendLengthCheckedAfterSession = "send-length-checked-after-session", "XFER", violates ["XFER-8.9-R2"],
        "VALUE SEND takes (consumes) the send session before its length check, so a 6700 ends the session";
    SendSessionKeptOnBadChallenge = "send-session-kept-on-bad-challenge", "XFER", violates ["XFER-8.9-R3", "XFER-9.2-R3"],
        "VALUE SEND keeps the send session when the transmission challenge is wrong (6982), allowing retries";
    LastDebitNotRecorded = "last-debit-not-recorded", "XFER", violates ["XFER-8.9-R7"],
        "VALUE SEND's commit debits but does not record the last debit";
    ReceiveAnswersOldBalance = "receive-answers-old-balance", "XFER", violates ["XFER-8.10-R1"],
        "VALUE RECEIVE credits but answers the balance from before the credit";
    NoCreditStatusSwapped = "no-credit-status-swapped", "XFER", violates ["XFER-8.10-R4", "XFER-8.12-R3"],
        "with no credit pending VALUE RECEIVE answers 6A88 and CANCEL PENDING CREDIT 6986 (the two status words swapped)";
    BadChallengeClearsCredit = "bad-challenge-clears-credit", "XFER", violates ["XFER-8.10-R5"],
        "VALUE RECEIVE with a wrong reception challenge clears the pending credit (answering 6982)";
    PendingStateRandomsSwapped = "pending-state-randoms-swapped", "XFER", violates ["XFER-8.11-R1"],
        "READ TRANSFER STATE 01 answers rnd_recv before rnd_send";
    LastDebitStateWithoutChallenge = "last-debit-state-without-challenge", "XFER", violates ["XFER-8.11-R2"],
        "READ TRANSFER STATE 02 answers 40 bytes: the last debit without its reception challenge";
    ReadStateEmptyZeros = "read-state-empty-zeros", "XFER", violates ["XFER-8.11-R4"],
        "READ TRANSFER STATE answers 9000 and zero bytes when nothing is recorded, instead of 6A88";
    CancelDoesNotClearCredit = "cancel-does-not-clear-credit", "XFER", violates ["XFER-8.12-R5", "XFER-9.2-R10"],
        "CANCEL PENDING CREDIT verifies the proof and answers 9000 but leaves the credit pending";
    CancelProofWithoutTag = "cancel-proof-without-tag", "XFER", violates ["XFER-8.13-R1"],
        "CANCEL PROOF computes the proof without the tag 03, so the receiving card refuses it";
    CancelProofUnknownSession = "cancel-proof-unknown-session", "XFER", violates ["XFER-8.13-R4"],
        "CANCEL PROOF gives a proof for a session it has no log entry of (trusting the terminal) instead of 6A88";
    CancelProofIgnoresAmount = "cancel-proof-ignores-amount", "XFER", violates ["XFER-8.13-R5"],
        "CANCEL PROOF does not compare the paid value and date with the logged session";
    CancelProofForDebited = "cancel-proof-for-debited", "XFER", violates ["XFER-8.13-R6"],
        "CANCEL PROOF proves a session that debited (neither the log state nor the last debit is checked)";
    CancelProofKeepsSession = "cancel-proof-keeps-session", "XFER", violates ["XFER-8.13-R7"],
        "CANCEL PROOF of the live session does not discard the RAM session, so VALUE SEND can still debit after the proof";
    CancelProofOnce = "cancel-proof-once", "XFER", violates ["XFER-8.13-R8"],
        "CANCEL PROOF answers 6986 for a session it already cancelled instead of the same proof again";
    SendSessionKeptAfterDebit = "send-session-kept-after-debit", "XFER", violates ["XFER-9.2-R2"],
        "VALUE SEND does not end the send session when it debits: the same VALUE SEND debits again";
    SendPermissionKeepsFirstSession = "send-permission-keeps-first-session", "XFER", violates ["XFER-9.2-R4"],
        "a VALUE SEND PERMISSION while a send session is open logs and answers a new rnd_send but the RAM keeps the first session";
    SendSessionSurvivesSelect = "send-session-survives-select", "XFER", violates ["XFER-9.2-R5"],
        "SELECT keeps the XFER send session (the rest of RAM is reset): VALUE SEND still debits after a re-selection";
    PendingCreditInRam = "pending-credit-in-ram", "XFER", violates ["XFER-9.2-R8"],
        "the pending credit is lost on every reset, power-off and SELECT (kept as if in RAM)";
}

impl fmt::Display for Defect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// An unknown defect name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown defect '{name}'{hint}", hint = crate::suggest::hint(name, Defect::ALL.iter().map(|d| d.name()), ""))]
pub struct UnknownDefect {
    pub name: String,
}

impl FromStr for Defect {
    type Err = UnknownDefect;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Defect::ALL.iter().copied().find(|d| d.name() == s).ok_or_else(|| UnknownDefect { name: s.to_string() })
    }
}

/// A set of defects: one bit per `Defect` (declaration order). `Default` is the empty set,
/// i.e. the reference card.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Defects([u64; WORDS]);

const WORDS: usize = 4;
// One bit per defect must fit.
const _: () = assert!(Defect::ALL.len() <= WORDS * 64);

impl Defects {
    pub const NONE: Defects = Defects([0; WORDS]);

    pub fn new() -> Defects {
        Defects::NONE
    }

    fn bit(d: Defect) -> (usize, u64) {
        let i = d as usize;
        (i / 64, 1u64 << (i % 64))
    }

    pub fn has(&self, d: Defect) -> bool {
        let (w, b) = Self::bit(d);
        self.0[w] & b != 0
    }

    pub fn insert(&mut self, d: Defect) {
        let (w, b) = Self::bit(d);
        self.0[w] |= b;
    }

    pub fn remove(&mut self, d: Defect) {
        let (w, b) = Self::bit(d);
        self.0[w] &= !b;
    }

    pub fn with(mut self, d: Defect) -> Defects {
        self.insert(d);
        self
    }

    pub fn is_empty(&self) -> bool {
        self.0.iter().all(|w| *w == 0)
    }

    pub fn len(&self) -> usize {
        self.0.iter().map(|w| w.count_ones() as usize).sum()
    }

    /// The defects in the set, in declaration order.
    pub fn iter(&self) -> impl Iterator<Item = Defect> + '_ {
        Defect::ALL.iter().copied().filter(move |d| self.has(*d))
    }

    /// Parse a list of names; the first unknown one is the error.
    pub fn parse<S: AsRef<str>>(names: &[S]) -> Result<Defects, UnknownDefect> {
        names.iter().map(|n| n.as_ref().parse::<Defect>()).collect()
    }
}

impl From<Defect> for Defects {
    fn from(d: Defect) -> Self {
        Defects::NONE.with(d)
    }
}

impl FromIterator<Defect> for Defects {
    fn from_iter<I: IntoIterator<Item = Defect>>(iter: I) -> Self {
        let mut s = Defects::NONE;
        for d in iter {
            s.insert(d);
        }
        s
    }
}

impl fmt::Display for Defects {
    /// Comma-separated names, or "none".
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_empty() {
            return f.write_str("none");
        }
        let names: Vec<&str> = self.iter().map(Defect::name).collect();
        f.write_str(&names.join(", "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_operations() {
        let mut s = Defects::new();
        assert!(s.is_empty());
        s.insert(Defect::ReceiveReplay);
        s.insert(Defect::CounterWraps);
        assert!(s.has(Defect::ReceiveReplay) && s.has(Defect::CounterWraps));
        assert!(!s.has(Defect::CpayOverdraft));
        assert_eq!(s.len(), 2);
        assert_eq!(s.to_string(), "counter-wraps, receive-replay");
        s.remove(Defect::CounterWraps);
        assert_eq!(s, Defects::from(Defect::ReceiveReplay));
        let all: Defects = Defect::ALL.iter().copied().collect();
        assert_eq!(all.len(), Defect::ALL.len());
        assert_eq!(all.iter().collect::<Vec<_>>(), Defect::ALL);
    }

    #[test]
    fn parse_lists_valid_names_on_error() {
        assert_eq!(
            Defects::parse(&["receive-replay", "counter-wraps"]).unwrap(),
            Defects::from(Defect::ReceiveReplay).with(Defect::CounterWraps)
        );
        let e = Defects::parse(&["counter-wraps", "nope"]).unwrap_err();
        assert_eq!(e.name, "nope");
        let msg = e.to_string();
        assert!(msg.starts_with(&format!("unknown defect 'nope' (one of: {}, ", Defect::ALL[0].name())), "{msg}");
        for d in Defect::ALL {
            assert!(msg.contains(d.name()));
        }
        let near = Defects::parse(&["counter-wrap"]).unwrap_err().to_string();
        assert_eq!(near, "unknown defect 'counter-wrap': did you mean counter-wraps?");
    }
}

#[cfg(test)]
#[allow(dead_code)] // the test table needs only `violates` and `description`
mod violates_syntax {
    // The table's grammar with and without `violates`, apart from the real table.
    defects! {
        Listed = "listed", "XFER", violates ["XFER-8.1-R3", "GEN-1.7-R2",], "breaks two rules";
        Unlisted = "unlisted", "PURSE", "names none yet";
    }

    #[test]
    fn violates_is_optional_and_kept_in_order() {
        assert_eq!(Defect::Listed.violates(), ["XFER-8.1-R3", "GEN-1.7-R2"]);
        assert!(Defect::Unlisted.violates().is_empty());
        assert_eq!(Defect::Listed.description(), "breaks two rules");
    }
}
