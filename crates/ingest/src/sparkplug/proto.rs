//! The Sparkplug B 3.0 protobuf messages, written by hand from the specification's field list
//! (chapter 6, "Sparkplug B payload definition") with `prost` derives: no `protoc`, no build
//! script. `crates/ingest/proto/sparkplug_b.proto` is the same schema as protobuf text for other
//! languages; a test keeps the field numbers of the two identical.
//!
//! The specification nests every message inside `Payload` (`Payload.Metric`, …); on the wire
//! nesting does not matter, so here they are flat. All fields are proto2 `optional`, hence
//! `Option`s: Sparkplug distinguishes "absent" from "zero" (a `seq` of 0, an alias of 0).
//! Extension ranges of the specification are accepted and ignored (unknown fields).

#![allow(missing_docs)] // reason: one protobuf field per item; the .proto and the spec document them

/// The top-level Sparkplug B message.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Payload {
    #[prost(uint64, optional, tag = "1")]
    pub timestamp: Option<u64>,
    #[prost(message, repeated, tag = "2")]
    pub metrics: Vec<Metric>,
    #[prost(uint64, optional, tag = "3")]
    pub seq: Option<u64>,
    #[prost(string, optional, tag = "4")]
    pub uuid: Option<String>,
    #[prost(bytes = "vec", optional, tag = "5")]
    pub body: Option<Vec<u8>>,
}

/// One metric: its identity (name and/or alias), time, datatype, flags and value.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Metric {
    #[prost(string, optional, tag = "1")]
    pub name: Option<String>,
    #[prost(uint64, optional, tag = "2")]
    pub alias: Option<u64>,
    #[prost(uint64, optional, tag = "3")]
    pub timestamp: Option<u64>,
    #[prost(uint32, optional, tag = "4")]
    pub datatype: Option<u32>,
    #[prost(bool, optional, tag = "5")]
    pub is_historical: Option<bool>,
    #[prost(bool, optional, tag = "6")]
    pub is_transient: Option<bool>,
    #[prost(bool, optional, tag = "7")]
    pub is_null: Option<bool>,
    #[prost(message, optional, tag = "8")]
    pub metadata: Option<MetaData>,
    #[prost(message, optional, tag = "9")]
    pub properties: Option<PropertySet>,
    #[prost(oneof = "metric::Value", tags = "10, 11, 12, 13, 14, 15, 16, 17, 18, 19")]
    pub value: Option<metric::Value>,
}

/// The value `oneof` of [`Metric`].
pub mod metric {
    /// A metric's value; which field is used depends on the datatype.
    #[derive(Clone, PartialEq, prost::Oneof)]
    pub enum Value {
        #[prost(uint32, tag = "10")]
        IntValue(u32),
        #[prost(uint64, tag = "11")]
        LongValue(u64),
        #[prost(float, tag = "12")]
        FloatValue(f32),
        #[prost(double, tag = "13")]
        DoubleValue(f64),
        #[prost(bool, tag = "14")]
        BooleanValue(bool),
        #[prost(string, tag = "15")]
        StringValue(String),
        #[prost(bytes = "vec", tag = "16")]
        BytesValue(Vec<u8>),
        #[prost(message, tag = "17")]
        DatasetValue(super::DataSet),
        #[prost(message, tag = "18")]
        TemplateValue(super::Template),
        #[prost(message, tag = "19")]
        ExtensionValue(super::Extension),
    }
}

/// Metadata of a metric, mostly for files and multi-part blobs.
#[derive(Clone, PartialEq, prost::Message)]
pub struct MetaData {
    #[prost(bool, optional, tag = "1")]
    pub is_multi_part: Option<bool>,
    #[prost(string, optional, tag = "2")]
    pub content_type: Option<String>,
    #[prost(uint64, optional, tag = "3")]
    pub size: Option<u64>,
    #[prost(uint64, optional, tag = "4")]
    pub seq: Option<u64>,
    #[prost(string, optional, tag = "5")]
    pub file_name: Option<String>,
    #[prost(string, optional, tag = "6")]
    pub file_type: Option<String>,
    #[prost(string, optional, tag = "7")]
    pub md5: Option<String>,
    #[prost(string, optional, tag = "8")]
    pub description: Option<String>,
}

/// A set of named property values (engineering units, limits, …).
#[derive(Clone, PartialEq, prost::Message)]
pub struct PropertySet {
    #[prost(string, repeated, tag = "1")]
    pub keys: Vec<String>,
    #[prost(message, repeated, tag = "2")]
    pub values: Vec<PropertyValue>,
}

/// A list of property sets.
#[derive(Clone, PartialEq, prost::Message)]
pub struct PropertySetList {
    #[prost(message, repeated, tag = "1")]
    pub propertyset: Vec<PropertySet>,
}

/// One property value.
#[derive(Clone, PartialEq, prost::Message)]
pub struct PropertyValue {
    #[prost(uint32, optional, tag = "1")]
    pub r#type: Option<u32>,
    #[prost(bool, optional, tag = "2")]
    pub is_null: Option<bool>,
    #[prost(oneof = "property_value::Value", tags = "3, 4, 5, 6, 7, 8, 9, 10, 11")]
    pub value: Option<property_value::Value>,
}

/// The value `oneof` of [`PropertyValue`].
pub mod property_value {
    /// A property's value.
    #[derive(Clone, PartialEq, prost::Oneof)]
    pub enum Value {
        #[prost(uint32, tag = "3")]
        IntValue(u32),
        #[prost(uint64, tag = "4")]
        LongValue(u64),
        #[prost(float, tag = "5")]
        FloatValue(f32),
        #[prost(double, tag = "6")]
        DoubleValue(f64),
        #[prost(bool, tag = "7")]
        BooleanValue(bool),
        #[prost(string, tag = "8")]
        StringValue(String),
        #[prost(message, tag = "9")]
        PropertysetValue(super::PropertySet),
        #[prost(message, tag = "10")]
        PropertysetsValue(super::PropertySetList),
        #[prost(message, tag = "11")]
        ExtensionValue(super::Extension),
    }
}

/// A table value: typed columns and rows.
#[derive(Clone, PartialEq, prost::Message)]
pub struct DataSet {
    #[prost(uint64, optional, tag = "1")]
    pub num_of_columns: Option<u64>,
    #[prost(string, repeated, tag = "2")]
    pub columns: Vec<String>,
    #[prost(uint32, repeated, packed = "false", tag = "3")]
    pub types: Vec<u32>,
    #[prost(message, repeated, tag = "4")]
    pub rows: Vec<Row>,
}

/// One row of a [`DataSet`].
#[derive(Clone, PartialEq, prost::Message)]
pub struct Row {
    #[prost(message, repeated, tag = "1")]
    pub elements: Vec<DataSetValue>,
}

/// One cell of a [`DataSet`] row.
#[derive(Clone, PartialEq, prost::Message)]
pub struct DataSetValue {
    #[prost(oneof = "data_set_value::Value", tags = "1, 2, 3, 4, 5, 6, 7")]
    pub value: Option<data_set_value::Value>,
}

/// The value `oneof` of [`DataSetValue`].
pub mod data_set_value {
    /// A cell's value.
    #[derive(Clone, PartialEq, prost::Oneof)]
    pub enum Value {
        #[prost(uint32, tag = "1")]
        IntValue(u32),
        #[prost(uint64, tag = "2")]
        LongValue(u64),
        #[prost(float, tag = "3")]
        FloatValue(f32),
        #[prost(double, tag = "4")]
        DoubleValue(f64),
        #[prost(bool, tag = "5")]
        BooleanValue(bool),
        #[prost(string, tag = "6")]
        StringValue(String),
        #[prost(message, tag = "7")]
        ExtensionValue(super::Extension),
    }
}

/// A user-defined type (definition or instance) made of metrics and parameters.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Template {
    #[prost(string, optional, tag = "1")]
    pub version: Option<String>,
    #[prost(message, repeated, tag = "2")]
    pub metrics: Vec<Metric>,
    #[prost(message, repeated, tag = "3")]
    pub parameters: Vec<Parameter>,
    #[prost(string, optional, tag = "4")]
    pub template_ref: Option<String>,
    #[prost(bool, optional, tag = "5")]
    pub is_definition: Option<bool>,
}

/// A parameter of a [`Template`].
#[derive(Clone, PartialEq, prost::Message)]
pub struct Parameter {
    #[prost(string, optional, tag = "1")]
    pub name: Option<String>,
    #[prost(uint32, optional, tag = "2")]
    pub r#type: Option<u32>,
    #[prost(oneof = "parameter::Value", tags = "3, 4, 5, 6, 7, 8, 9")]
    pub value: Option<parameter::Value>,
}

/// The value `oneof` of [`Parameter`].
pub mod parameter {
    /// A parameter's value.
    #[derive(Clone, PartialEq, prost::Oneof)]
    pub enum Value {
        #[prost(uint32, tag = "3")]
        IntValue(u32),
        #[prost(uint64, tag = "4")]
        LongValue(u64),
        #[prost(float, tag = "5")]
        FloatValue(f32),
        #[prost(double, tag = "6")]
        DoubleValue(f64),
        #[prost(bool, tag = "7")]
        BooleanValue(bool),
        #[prost(string, tag = "8")]
        StringValue(String),
        #[prost(message, tag = "9")]
        ExtensionValue(super::Extension),
    }
}

/// The specification's `*Extension` messages: only an extension range, so no known fields.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Extension {}

/// Sparkplug B datatype codes (the `datatype` of a [`Metric`], the `type` of properties,
/// parameters and data set columns).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DataType {
    Unknown = 0,
    Int8 = 1,
    Int16 = 2,
    Int32 = 3,
    Int64 = 4,
    UInt8 = 5,
    UInt16 = 6,
    UInt32 = 7,
    UInt64 = 8,
    Float = 9,
    Double = 10,
    Boolean = 11,
    String = 12,
    DateTime = 13,
    Text = 14,
    Uuid = 15,
    DataSet = 16,
    Bytes = 17,
    File = 18,
    Template = 19,
    PropertySet = 20,
    PropertySetList = 21,
    Int8Array = 22,
    Int16Array = 23,
    Int32Array = 24,
    Int64Array = 25,
    UInt8Array = 26,
    UInt16Array = 27,
    UInt32Array = 28,
    UInt64Array = 29,
    FloatArray = 30,
    DoubleArray = 31,
    BooleanArray = 32,
    StringArray = 33,
    DateTimeArray = 34,
}

impl DataType {
    /// Every datatype, in code order.
    pub const ALL: [DataType; 35] = [
        DataType::Unknown,
        DataType::Int8,
        DataType::Int16,
        DataType::Int32,
        DataType::Int64,
        DataType::UInt8,
        DataType::UInt16,
        DataType::UInt32,
        DataType::UInt64,
        DataType::Float,
        DataType::Double,
        DataType::Boolean,
        DataType::String,
        DataType::DateTime,
        DataType::Text,
        DataType::Uuid,
        DataType::DataSet,
        DataType::Bytes,
        DataType::File,
        DataType::Template,
        DataType::PropertySet,
        DataType::PropertySetList,
        DataType::Int8Array,
        DataType::Int16Array,
        DataType::Int32Array,
        DataType::Int64Array,
        DataType::UInt8Array,
        DataType::UInt16Array,
        DataType::UInt32Array,
        DataType::UInt64Array,
        DataType::FloatArray,
        DataType::DoubleArray,
        DataType::BooleanArray,
        DataType::StringArray,
        DataType::DateTimeArray,
    ];

    /// The wire code.
    pub fn code(self) -> u32 {
        self as u32
    }

    /// The datatype of a wire code; `None` for codes the specification does not define.
    pub fn from_code(code: u32) -> Option<DataType> {
        DataType::ALL.get(usize::try_from(code).ok()?).copied()
    }

    /// The name the specification (and the .proto enum) uses.
    pub fn name(self) -> &'static str {
        match self {
            DataType::Uuid => "UUID",
            other => DATATYPE_NAMES[other as usize],
        }
    }
}

const DATATYPE_NAMES: [&str; 35] = [
    "Unknown",
    "Int8",
    "Int16",
    "Int32",
    "Int64",
    "UInt8",
    "UInt16",
    "UInt32",
    "UInt64",
    "Float",
    "Double",
    "Boolean",
    "String",
    "DateTime",
    "Text",
    "UUID",
    "DataSet",
    "Bytes",
    "File",
    "Template",
    "PropertySet",
    "PropertySetList",
    "Int8Array",
    "Int16Array",
    "Int32Array",
    "Int64Array",
    "UInt8Array",
    "UInt16Array",
    "UInt32Array",
    "UInt64Array",
    "FloatArray",
    "DoubleArray",
    "BooleanArray",
    "StringArray",
    "DateTimeArray",
];
