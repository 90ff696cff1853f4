//! The defaults Kotlin and Swift see, read back from the metadata uniffi compiles into this
//! crate (what `uniffi-bindgen` writes the foreign defaults from), checked against core's.
//!
//! A record's defaults are checked whole: [`record`] builds the record as the foreign side does
//! when every field is left out (each declared default written in uniffi's wire format, the
//! record read back from it), and its conversion must equal core's default. A method's
//! argument is checked against the core constant it stands for; README.md's `DeliveryOptions`
//! table and the defaults it shows in calls, against the declared ones. Changing a default in
//! core and not here, or here and not in core, fails a test.

use std::time::Duration;

use tidings::defaults::{CALL_TIMEOUT, CATCH_UP, STOP_GRACE, VERIFY_TOLERANCE, WAIT_IDLE_TIMEOUT};
use uniffi::Lift;
use uniffi_meta::{DefaultValueMetadata, FnParamMetadata, LiteralMetadata, Metadata, Type};

use crate::UniFfiTag;
use crate::delivery::{
    DeliveryOptions, UNIFFI_META_TIDINGS_UNIFFI_METHOD_DELIVERYENGINE_SHUTDOWN,
    UNIFFI_META_TIDINGS_UNIFFI_METHOD_DELIVERYENGINE_WAIT_IDLE, UNIFFI_META_TIDINGS_UNIFFI_RECORD_DELIVERYOPTIONS,
};
use crate::endpoint::{EndpointOptions, UNIFFI_META_TIDINGS_UNIFFI_RECORD_ENDPOINTOPTIONS};
use crate::error::Result;
use crate::inbox::{
    InboxOptions, UNIFFI_META_TIDINGS_UNIFFI_METHOD_STORE_RELAY_IN, UNIFFI_META_TIDINGS_UNIFFI_RECORD_INBOXOPTIONS,
};
use crate::store::{
    UNIFFI_META_TIDINGS_UNIFFI_CONSTRUCTOR_STORE_NEW, UNIFFI_META_TIDINGS_UNIFFI_CONSTRUCTOR_STORE_OPEN_IN_MEMORY,
    UNIFFI_META_TIDINGS_UNIFFI_METHOD_STORE_CALL, UNIFFI_META_TIDINGS_UNIFFI_METHOD_STORE_CREATE_ENDPOINT,
    UNIFFI_META_TIDINGS_UNIFFI_METHOD_STORE_DELIVERIES, UNIFFI_META_TIDINGS_UNIFFI_METHOD_STORE_ENABLE_ENDPOINT,
    UNIFFI_META_TIDINGS_UNIFFI_METHOD_STORE_READ_ALL, UNIFFI_META_TIDINGS_UNIFFI_METHOD_STORE_READ_STREAM,
    UNIFFI_META_TIDINGS_UNIFFI_METHOD_STORE_START_DELIVERY,
};
use crate::transaction::UNIFFI_META_TIDINGS_UNIFFI_METHOD_TRANSACTION_READ_STREAM;
use crate::types::{StoreOptions, UNIFFI_META_TIDINGS_UNIFFI_RECORD_STOREOPTIONS};

/// Reads one metadata item.
fn metadata(bytes: &[u8]) -> Metadata {
    Metadata::read(bytes).unwrap_or_else(|e| panic!("uniffi metadata: {e}"))
}

/// Bytes of an integer type, or of a float type.
fn width(ty: &Type) -> Option<usize> {
    match ty {
        Type::UInt8 | Type::Int8 => Some(1),
        Type::UInt16 | Type::Int16 => Some(2),
        Type::UInt32 | Type::Int32 | Type::Float32 => Some(4),
        Type::UInt64 | Type::Int64 | Type::Float64 => Some(8),
        _ => None,
    }
}

/// Writes the default `value` of a `ty` as uniffi serialises a value of that type.
fn write(ty: &Type, value: &DefaultValueMetadata, buf: &mut Vec<u8>) {
    use DefaultValueMetadata::{Default, Literal};
    use LiteralMetadata as L;
    let big_endian = |bytes: [u8; 8], buf: &mut Vec<u8>| {
        let n = width(ty).unwrap_or(8);
        buf.extend_from_slice(&bytes[8 - n..]);
    };
    match (ty, value) {
        (Type::Optional { .. }, Default | Literal(L::None)) => buf.push(0),
        (Type::Optional { inner_type }, Literal(L::Some { inner })) => {
            buf.push(1);
            write(inner_type, inner, buf);
        }
        (Type::Sequence { .. } | Type::Map { .. } | Type::Set { .. }, Default)
        | (Type::Sequence { .. }, Literal(L::EmptySequence))
        | (Type::Map { .. }, Literal(L::EmptyMap))
        | (Type::Set { .. }, Literal(L::EmptySet)) => buf.extend_from_slice(&0i32.to_be_bytes()),
        (Type::Boolean, Default) => buf.push(0),
        (Type::Boolean, Literal(L::Boolean(b))) => buf.push(u8::from(*b)),
        (Type::String, Default) => buf.extend_from_slice(&0i32.to_be_bytes()),
        (Type::String, Literal(L::String(s))) => {
            buf.extend_from_slice(&i32::try_from(s.len()).unwrap_or(i32::MAX).to_be_bytes());
            buf.extend_from_slice(s.as_bytes());
        }
        (Type::Float32, Literal(L::Float(text, _))) => {
            buf.extend_from_slice(&text.parse::<f32>().expect("a float literal").to_be_bytes());
        }
        (Type::Float64, Literal(L::Float(text, _))) => {
            buf.extend_from_slice(&text.parse::<f64>().expect("a float literal").to_be_bytes());
        }
        (_, Default) if width(ty).is_some() => big_endian([0; 8], buf),
        (_, Literal(L::UInt(n, ..))) => big_endian(n.to_be_bytes(), buf),
        (_, Literal(L::Int(n, ..))) => big_endian(n.to_be_bytes(), buf),
        (ty, value) => panic!("no writer for a default {value:?} of {ty:?}"),
    }
}

/// Reads a `T` back from what [`write`] wrote; all of it must be read.
fn read<T: Lift<UniFfiTag>>(buf: &[u8]) -> T {
    let mut rest = buf;
    let value = T::try_read(&mut rest).unwrap_or_else(|e| panic!("reading the defaults back: {e}"));
    assert!(rest.is_empty(), "{} bytes left over", rest.len());
    value
}

/// The record whose metadata is `meta`, with every field left out, as Kotlin's and Swift's
/// `T()` build it. A field without a default fails.
pub(crate) fn record<T: Lift<UniFfiTag>>(meta: &[u8]) -> T {
    record_with(meta, &[])
}

/// The record whose metadata is `meta` as `T(given...)` builds it: the fields without a
/// default (strings) given, every other field left out. A field without either fails.
fn record_with<T: Lift<UniFfiTag>>(meta: &[u8], given: &[(&str, &str)]) -> T {
    let Metadata::Record(record) = metadata(meta) else { panic!("not a record") };
    let mut buf = Vec::new();
    for field in &record.fields {
        if let Some((_, value)) = given.iter().find(|(name, _)| *name == field.name) {
            assert!(field.default.is_none(), "{}.{} has a default: leave it out", record.name, field.name);
            write(&field.ty, &DefaultValueMetadata::Literal(LiteralMetadata::String((*value).into())), &mut buf);
            continue;
        }
        let default = field.default.as_ref().unwrap_or_else(|| panic!("{}.{} has no default", record.name, field.name));
        write(&field.ty, default, &mut buf);
    }
    read(&buf)
}

/// The arguments of the function, method or constructor whose metadata is `meta`.
fn arguments(meta: &[u8]) -> (String, Vec<FnParamMetadata>) {
    match metadata(meta) {
        Metadata::Func(f) => (f.name, f.inputs),
        Metadata::Method(m) => (format!("{}.{}", m.self_name, m.name), m.inputs),
        Metadata::Constructor(c) => (format!("{}.{}", c.self_name, c.name), c.inputs),
        _ => panic!("not a function, method or constructor"),
    }
}

/// The declared default of argument `name`.
fn argument_default(meta: &[u8], name: &str) -> (Type, DefaultValueMetadata) {
    let (function, inputs) = arguments(meta);
    let arg = inputs.into_iter().find(|a| a.name == name).unwrap_or_else(|| panic!("{function} has no {name}"));
    let default = arg.default.unwrap_or_else(|| panic!("{function}'s {name} has no default"));
    (arg.ty, default)
}

/// The declared default of argument `name`, as a `T`.
fn argument<T: Lift<UniFfiTag>>(meta: &[u8], name: &str) -> T {
    let (ty, default) = argument_default(meta, name);
    let mut buf = Vec::new();
    write(&ty, &default, &mut buf);
    read(&buf)
}

fn secs(d: Duration) -> f64 {
    d.as_secs_f64()
}

/// `StoreOptions()`, `EndpointOptions()` and `DeliveryOptions()`, as Kotlin and Swift build
/// them, are core's defaults.
#[test]
fn option_records_left_out_are_cores() -> Result<()> {
    let store: StoreOptions = record(&UNIFFI_META_TIDINGS_UNIFFI_RECORD_STOREOPTIONS);
    assert_eq!(store.to_core()?, tidings::StoreOptions::default());
    let url = "https://example.com/hook";
    let endpoint: EndpointOptions = record(&UNIFFI_META_TIDINGS_UNIFFI_RECORD_ENDPOINTOPTIONS);
    assert_eq!(endpoint.to_core(url.into())?, tidings::EndpointSpec::new(url));
    let delivery: DeliveryOptions = record(&UNIFFI_META_TIDINGS_UNIFFI_RECORD_DELIVERYOPTIONS);
    assert_eq!(delivery.to_core()?, tidings::DeliveryOptions::default());
    let given = [("url", "nats://127.0.0.1:4222"), ("stream", "EVENTS"), ("consumer", "app")];
    let inbox: InboxOptions = record_with(&UNIFFI_META_TIDINGS_UNIFFI_RECORD_INBOXOPTIONS, &given);
    let (declared, core) =
        (inbox.to_core()?, tidings::jetstream::InboxOptions::new(given[0].1, given[1].1, given[2].1));
    // Core's options have no `PartialEq`: compare their (redacting) debug forms, every field.
    assert_eq!(format!("{declared:?}"), format!("{core:?}"));
    assert_eq!((declared.batch, declared.ack_wait), (core.batch, core.ack_wait));
    Ok(())
}

#[test]
fn options_arguments_left_out_are_the_records_defaults() {
    for (meta, name) in [
        (&UNIFFI_META_TIDINGS_UNIFFI_CONSTRUCTOR_STORE_NEW[..], "options"),
        (&UNIFFI_META_TIDINGS_UNIFFI_CONSTRUCTOR_STORE_OPEN_IN_MEMORY[..], "options"),
        (&UNIFFI_META_TIDINGS_UNIFFI_METHOD_STORE_CREATE_ENDPOINT[..], "options"),
        (&UNIFFI_META_TIDINGS_UNIFFI_METHOD_STORE_START_DELIVERY[..], "options"),
    ] {
        let (ty, default) = argument_default(meta, name);
        assert!(matches!(ty, Type::Record { .. }), "{ty:?}");
        assert_eq!(default, DefaultValueMetadata::Default, "{}", arguments(meta).0);
    }
    // No handler: the inbox only appends (core's `relay_in` with a handler that does nothing).
    let (_, handler) = argument_default(&UNIFFI_META_TIDINGS_UNIFFI_METHOD_STORE_RELAY_IN, "handler");
    assert_eq!(handler, DefaultValueMetadata::Literal(LiteralMetadata::None));
}

#[test]
fn argument_defaults_are_cores() {
    let delivery = tidings::DeliveryFilter::default();
    assert_eq!(
        argument::<f64>(&UNIFFI_META_TIDINGS_UNIFFI_METHOD_DELIVERYENGINE_WAIT_IDLE, "timeout"),
        secs(WAIT_IDLE_TIMEOUT)
    );
    assert_eq!(argument::<f64>(&UNIFFI_META_TIDINGS_UNIFFI_METHOD_DELIVERYENGINE_SHUTDOWN, "grace"), secs(STOP_GRACE));
    assert_eq!(argument::<f64>(&UNIFFI_META_TIDINGS_UNIFFI_METHOD_STORE_CALL, "timeout"), secs(CALL_TIMEOUT));
    assert_eq!(
        argument::<f64>(&crate::verify::UNIFFI_META_TIDINGS_UNIFFI_FUNC_VERIFY, "tolerance_seconds"),
        secs(VERIFY_TOLERANCE)
    );
    assert_eq!(
        argument::<f64>(&crate::verify::UNIFFI_META_TIDINGS_UNIFFI_FUNC_VERIFY_SINGLE_VALUED, "tolerance_seconds"),
        secs(VERIFY_TOLERANCE)
    );
    assert_eq!(argument::<bool>(&UNIFFI_META_TIDINGS_UNIFFI_METHOD_STORE_ENABLE_ENDPOINT, "catch_up"), CATCH_UP);
    let limit = argument::<i64>(&UNIFFI_META_TIDINGS_UNIFFI_METHOD_STORE_DELIVERIES, "limit");
    assert_eq!(crate::convert::count("limit", limit).ok(), Some(delivery.limit));
    let all = tidings::ReadAllOptions::default();
    let from_position = argument::<i64>(&UNIFFI_META_TIDINGS_UNIFFI_METHOD_STORE_READ_ALL, "from_position");
    assert_eq!(crate::convert::unsigned("from_position", from_position).ok(), Some(all.from_position));
    assert_eq!(argument::<bool>(&UNIFFI_META_TIDINGS_UNIFFI_METHOD_STORE_READ_ALL, "backwards"), all.backwards);
    let stream = tidings::ReadStreamOptions::default();
    for meta in [
        &UNIFFI_META_TIDINGS_UNIFFI_METHOD_STORE_READ_STREAM[..],
        &UNIFFI_META_TIDINGS_UNIFFI_METHOD_TRANSACTION_READ_STREAM[..],
    ] {
        assert_eq!(argument::<bool>(meta, "backwards"), stream.backwards);
    }
}

/// A default as README.md writes it in Kotlin (`16`, `100000`, `30.0`, `null`, `listOf()`)
/// or as declared, in one comparable form.
fn comparable(kotlin: &str) -> String {
    let text = kotlin.trim().trim_end_matches("uL").trim_end_matches('u').trim_end_matches('L');
    match text.parse::<f64>() {
        Ok(n) => format!("{n}"),
        Err(_) => text.to_string(),
    }
}

/// A declared default in the form [`comparable`] gives.
fn declared(value: &DefaultValueMetadata) -> String {
    match value {
        DefaultValueMetadata::Literal(LiteralMetadata::UInt(n, ..)) => format!("{}", *n as f64),
        DefaultValueMetadata::Literal(LiteralMetadata::Int(n, ..)) => format!("{}", *n as f64),
        DefaultValueMetadata::Literal(LiteralMetadata::Float(text, _)) => comparable(text),
        DefaultValueMetadata::Literal(LiteralMetadata::Boolean(b)) => b.to_string(),
        DefaultValueMetadata::Literal(LiteralMetadata::None) => "null".into(),
        DefaultValueMetadata::Default | DefaultValueMetadata::Literal(LiteralMetadata::EmptySequence) => {
            "listOf()".into()
        }
        other => format!("{other:?}"),
    }
}

/// `camelCase` as `snake_case`.
fn snake(name: &str) -> String {
    name.chars()
        .flat_map(|c| if c.is_ascii_uppercase() { vec!['_', c.to_ascii_lowercase()] } else { vec![c] })
        .collect()
}

/// The code spans of a Markdown table cell.
fn code_spans(cell: &str) -> Vec<&str> {
    cell.split('`').skip(1).step_by(2).collect()
}

#[test]
fn the_readme_shows_the_declared_defaults() {
    let readme = include_str!("../README.md");
    let Metadata::Record(options) = metadata(&UNIFFI_META_TIDINGS_UNIFFI_RECORD_DELIVERYOPTIONS) else {
        panic!("not a record")
    };
    let table = readme.split("`DeliveryOptions` (every field has the default shown").nth(1).expect("the table");
    let mut shown = Vec::new();
    let rows = table.lines().skip_while(|l| !l.starts_with('|')).take_while(|l| l.starts_with('|'));
    for row in rows.skip(2) {
        let cells: Vec<&str> = row.split('|').collect();
        for (name, value) in code_spans(cells[1]).into_iter().zip(code_spans(cells[2])) {
            let field = options.fields.iter().find(|f| f.name == snake(name)).expect("a DeliveryOptions field");
            let default = field.default.as_ref().expect("a default");
            assert_eq!(comparable(value), declared(default), "README.md: DeliveryOptions.{name}");
            shown.push(field.name.clone());
        }
    }
    let fields: Vec<String> = options.fields.iter().map(|f| f.name.clone()).collect();
    assert_eq!(shown, fields, "README.md's table lists every DeliveryOptions field, in order");
    for (call, meta, name) in [
        ("waitIdle(timeout = ", &UNIFFI_META_TIDINGS_UNIFFI_METHOD_DELIVERYENGINE_WAIT_IDLE[..], "timeout"),
        ("shutdown(grace = ", &UNIFFI_META_TIDINGS_UNIFFI_METHOD_DELIVERYENGINE_SHUTDOWN[..], "grace"),
    ] {
        let value = readme.split(call).nth(1).and_then(|rest| rest.split(')').next()).expect(call);
        assert_eq!(comparable(value), declared(&argument_default(meta, name).1), "README.md: {call}");
    }
}
