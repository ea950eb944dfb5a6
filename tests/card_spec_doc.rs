use cardbench::card::{Protocol, VirtualCard};
use cardbench::issuance::CardPlan;
use cardbench::keys::Keyset;
use cardbench::lab::personalize_virtual;

fn x(c: &mut VirtualCard, h: &str) -> String {
    let b = hex::decode(h.replace(' ', "")).unwrap();
    match c.process(&b) {
        Some(r) => {
            let s = hex::encode_upper(&r);
            println!("> {h}\n< {s}");
            s
        }
        None => {
            println!("> {h}\n< (mute)");
            String::new()
        }
    }
}
fn data(s: &str) -> String { s[..s.len()-4].to_string() }

#[test]
fn explore() {
    let keys = Keyset::from_seed("cardbench virtual lab", vec![]);
    let mut pa = CardPlan::new([0xCB, 0, 0, 0, 0, 0, 0x0A, 0x01]);
    pa.balance = 10000;
    let mut pb = CardPlan::new([0xCB, 0, 0, 0, 0, 0, 0x0B, 0x02]);
    pb.balance = 5000; pb.transfer_key = 2; pb.slots = vec![3,4];
    let mut a = personalize_virtual(&pa, Protocol::T1, &keys).unwrap();
    let mut b = personalize_virtual(&pb, Protocol::T1, &keys).unwrap();
    a.power_on(); b.power_on();
    let sel = "00A40400 07 A0000007770003";
    x(&mut a, sel); x(&mut b, sel);
    println!("--- key update A(1) <- B(2), mode 01");
    x(&mut a, "80240100 04 00000000");
    let r = data(&x(&mut a, "80200100 10"));
    let blob = data(&x(&mut b, &format!("80220100 10 {r} 00")));
    x(&mut a, &format!("80240300 {:02X} {blob}", blob.len()/2));
    x(&mut a, &format!("80240100 {:02X} {blob}", blob.len()/2));
    let _r2 = data(&x(&mut a, "80200100 10"));
    x(&mut a, &format!("80240100 {:02X} {blob}", blob.len()/2));
    let r3 = data(&x(&mut a, "80200100 10"));
    let blob3 = data(&x(&mut b, &format!("80220100 10 {r3} 00")));
    x(&mut a, &format!("80240100 {:02X} {blob3}", blob3.len()/2));
    let r4 = data(&x(&mut a, "80200100 10"));
    let blob4 = data(&x(&mut b, &format!("80220100 10 {r4} 00")));
    x(&mut a, &format!("80240100 {:02X} {blob4}", blob4.len()/2));
    x(&mut a, "80200100 01 00 10");
    x(&mut a, "80200500 10");
    x(&mut a, "80200200 10");
    x(&mut a, "80220300 10 00112233445566778899AABBCCDDEEFF 00");
    println!("--- transfer A -> B 300, B receive lost");
    let rs = data(&x(&mut a, "80300000 08 0000012C6A1D7440 10"));
    let rb = data(&x(&mut b, &format!("80320000 18 0000012C6A1D7440{rs} 20")));
    x(&mut b, &format!("80320000 18 0000012C6A1D7440{rs} 20"));
    let ch = data(&x(&mut a, &format!("80340000 20 {rb} 10")));
    x(&mut a, &format!("80340000 20 {rb} 10"));
    let _ = ch;
    b.power_off(); b.power_on(); x(&mut b, sel);
    let pend = data(&x(&mut b, "80380100 00"));
    let last = data(&x(&mut a, "80380200 00"));
    println!("pend rnd_recv {} last rnd_recv {}", &pend[48..80], &last[48..80]);
    x(&mut b, "80360000 10 00000000000000000000000000000000 04");
    x(&mut b, &format!("80360000 10 {} 04", &last[80..112]));
    x(&mut b, &format!("80360000 10 {} 04", &last[80..112]));
    x(&mut b, "80380100 00");
    x(&mut b, "80100000 00");
    println!("--- cpay");
    x(&mut b, "00A40400 07 A0000007770002");
    x(&mut b, "80880000 10 00112233445566778899AABBCCDDEEFF 00");
    x(&mut b, "80D60000 48 000000016A1D7440 00000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000 04");
    x(&mut b, "002A00BE 01 00");
    x(&mut b, "002A00BF 01 00");
    x(&mut b, "80B20200 00");
    x(&mut b, "80B20300 00");
}
