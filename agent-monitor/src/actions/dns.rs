//! The DNS wire format (RFC 1035), as far as the monitor needs it: the
//! questions of a query, and the addresses an answer gives for them.
//! Every read is bounds-checked; compression pointers may only point
//! backwards, so a malicious packet cannot loop.

use std::net::{Ipv4Addr, Ipv6Addr};

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DnsError {
    #[error("DNS message cut short")]
    Short,
    #[error("bad DNS name")]
    BadName,
}

/// A record of the answer section.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Answer {
    A(Ipv4Addr),
    Aaaa(Ipv6Addr),
    Cname(String),
    Other(u16),
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Message {
    pub id: u16,
    pub response: bool,
    /// (name, type) of each question.
    pub questions: Vec<(String, u16)>,
    /// (owner name, record) of each answer.
    pub answers: Vec<(String, Answer)>,
    /// The answer section ended early: the message was cut or malformed
    /// after the records in `answers`.
    pub cut: bool,
}

impl Message {
    /// Every address in the answers, as text.
    pub fn addresses(&self) -> impl Iterator<Item = String> + '_ {
        self.answers.iter().filter_map(|(_, answer)| match answer {
            Answer::A(a) => Some(a.to_string()),
            Answer::Aaaa(a) => Some(a.to_string()),
            _ => None,
        })
    }
}

/// The mnemonic of a record type.
pub fn type_name(qtype: u16) -> String {
    match qtype {
        1 => "A".into(),
        2 => "NS".into(),
        5 => "CNAME".into(),
        6 => "SOA".into(),
        12 => "PTR".into(),
        15 => "MX".into(),
        16 => "TXT".into(),
        28 => "AAAA".into(),
        33 => "SRV".into(),
        65 => "HTTPS".into(),
        255 => "ANY".into(),
        other => format!("TYPE{other}"),
    }
}

/// The big-endian u16 at `at`.
fn be_u16(bytes: &[u8], at: usize) -> Result<u16, DnsError> {
    let pair = bytes.get(at..at + 2).ok_or(DnsError::Short)?;
    Ok(u16::from_be_bytes([pair[0], pair[1]]))
}

/// Most questions and answers read from one message.
const MAX_RECORDS: usize = 64;

pub fn parse(bytes: &[u8]) -> Result<Message, DnsError> {
    let u16_at = |at: usize| be_u16(bytes, at);
    let mut message = Message {
        id: u16_at(0)?,
        response: u16_at(2)? & 0x8000 != 0,
        ..Default::default()
    };
    let questions = usize::from(u16_at(4)?).min(MAX_RECORDS);
    let answers = usize::from(u16_at(6)?).min(MAX_RECORDS);
    let mut at = 12;
    for _ in 0..questions {
        let (name, next) = read_name(bytes, at)?;
        let qtype = u16_at(next)?;
        let _class = u16_at(next + 2)?;
        message.questions.push((name, qtype));
        at = next + 4;
    }
    // A long answer may arrive cut at the capture bound: keep the records
    // read before the cut rather than losing the message.
    for _ in 0..answers {
        match read_answer(bytes, at) {
            Ok((record, next)) => {
                message.answers.push(record);
                at = next;
            }
            Err(_) => {
                message.cut = true;
                break;
            }
        }
    }
    Ok(message)
}

/// One resource record at `at`, and the offset after it.
fn read_answer(bytes: &[u8], at: usize) -> Result<((String, Answer), usize), DnsError> {
    let u16_at = |at: usize| be_u16(bytes, at);
    let (owner, next) = read_name(bytes, at)?;
    let rtype = u16_at(next)?;
    let len = usize::from(u16_at(next + 8)?);
    let data_at = next + 10;
    let data = bytes.get(data_at..data_at + len).ok_or(DnsError::Short)?;
    let answer = match (rtype, len) {
        (1, 4) => Answer::A(Ipv4Addr::new(data[0], data[1], data[2], data[3])),
        (28, 16) => Answer::Aaaa(Ipv6Addr::from(
            <[u8; 16]>::try_from(data).expect("16 bytes"),
        )),
        (5, _) => Answer::Cname(read_name(bytes, data_at)?.0),
        (other, _) => Answer::Other(other),
    };
    Ok(((owner, answer), data_at + len))
}

/// A possibly compressed name at `at`, and the offset after it.
fn read_name(bytes: &[u8], mut at: usize) -> Result<(String, usize), DnsError> {
    let mut labels: Vec<String> = Vec::new();
    let mut end = None;
    let mut length = 0;
    loop {
        let len = *bytes.get(at).ok_or(DnsError::Short)?;
        match len {
            0 => {
                end.get_or_insert(at + 1);
                break;
            }
            l if l & 0xc0 == 0xc0 => {
                let low = *bytes.get(at + 1).ok_or(DnsError::Short)?;
                let target = usize::from(u16::from_be_bytes([l & 0x3f, low]));
                if target >= at {
                    return Err(DnsError::BadName);
                }
                end.get_or_insert(at + 2);
                at = target;
            }
            l if l & 0xc0 == 0 => {
                let l = usize::from(l);
                let label = bytes.get(at + 1..at + 1 + l).ok_or(DnsError::Short)?;
                length += l + 1;
                if length > 255 {
                    return Err(DnsError::BadName);
                }
                labels.push(String::from_utf8_lossy(label).into_owned());
                at += 1 + l;
            }
            _ => return Err(DnsError::BadName),
        }
    }
    Ok((labels.join("."), end.expect("set before break")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(out: &mut Vec<u8>, name: &str) {
        for label in name.split('.') {
            out.push(label.len() as u8);
            out.extend_from_slice(label.as_bytes());
        }
        out.push(0);
    }

    fn query(id: u16, qname: &str, qtype: u16) -> Vec<u8> {
        let mut out = vec![];
        out.extend_from_slice(&id.to_be_bytes());
        out.extend_from_slice(&[0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]);
        name(&mut out, qname);
        out.extend_from_slice(&qtype.to_be_bytes());
        out.extend_from_slice(&[0, 1]);
        out
    }

    #[test]
    fn reads_a_query() {
        let message = parse(&query(7, "example.com", 28)).unwrap();
        assert_eq!(message.id, 7);
        assert!(!message.response);
        assert_eq!(message.questions, vec![("example.com".into(), 28)]);
        assert_eq!(type_name(28), "AAAA");
    }

    #[test]
    fn reads_compressed_answers_through_a_cname() {
        let mut packet = query(9, "www.example.com", 1);
        packet[2] = 0x81;
        packet[7] = 2; // two answers
        // www.example.com CNAME example.com (pointer into the question)
        packet.extend_from_slice(&[0xc0, 12, 0, 5, 0, 1, 0, 0, 0, 60, 0, 2, 0xc0, 16]);
        // example.com A 93.184.216.34
        packet.extend_from_slice(&[0xc0, 16, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 93, 184, 216, 34]);
        let message = parse(&packet).unwrap();
        assert!(message.response);
        assert_eq!(
            message.answers,
            vec![
                (
                    "www.example.com".into(),
                    Answer::Cname("example.com".into())
                ),
                (
                    "example.com".into(),
                    Answer::A(Ipv4Addr::new(93, 184, 216, 34))
                ),
            ]
        );
        assert_eq!(
            message.addresses().collect::<Vec<_>>(),
            vec!["93.184.216.34"]
        );
    }

    #[test]
    fn hostile_packets_are_errors_not_panics_or_loops() {
        // A pointer to itself.
        let mut packet = query(1, "a", 1);
        packet.truncate(12);
        packet.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1]);
        assert_eq!(parse(&packet), Err(DnsError::BadName));
        // Every prefix of a valid message.
        let full = query(1, "example.com", 1);
        for len in 0..full.len() {
            assert!(parse(&full[..len]).is_err(), "prefix {len}");
        }
        // Random bytes.
        let mut state = 0x2545_f491_u32;
        for _ in 0..2000 {
            let bytes: Vec<u8> = (0..64)
                .map(|_| {
                    state ^= state << 13;
                    state ^= state >> 17;
                    state ^= state << 5;
                    state as u8
                })
                .collect();
            let _ = parse(&bytes);
        }
    }
}
