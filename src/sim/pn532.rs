//! PN532 simulator (in progress).
