//! The products page: the catalogue orders are entered against. Products with their variants
//! (each with its routing and bill of materials), the routings with their steps, and the
//! materials. Everyone signed in reads it; planners and administrators change it here, through
//! the API's `/products`, `/variants`, `/routings` and `/materials`.

use std::collections::HashMap;

use axum::extract::State;
use maud::{Markup, html};
use model::{Machine, MachineId, Material, Product, Routing, RoutingId, Variant};
use store::{MachineFilter, PageRequest};

use super::{Ctx, Nav, OrPage, PageResult, layout};
use crate::AppState;
use crate::auth::Need;

/// The products page's labels.
pub(crate) struct Text {
    pub(crate) title: &'static str,
    pub(crate) intro: &'static str,
    pub(crate) products: &'static str,
    pub(crate) code: &'static str,
    pub(crate) name: &'static str,
    pub(crate) family: &'static str,
    pub(crate) family_hint: &'static str,
    pub(crate) variants: &'static str,
    pub(crate) routing: &'static str,
    pub(crate) no_routing: &'static str,
    pub(crate) bom: &'static str,
    pub(crate) material: &'static str,
    pub(crate) kg_per_unit: &'static str,
    pub(crate) bom_hint: &'static str,
    pub(crate) new_product: &'static str,
    pub(crate) new_variant: &'static str,
    pub(crate) no_variants: &'static str,
    pub(crate) routings: &'static str,
    pub(crate) step: &'static str,
    pub(crate) eligible: &'static str,
    pub(crate) setup_minutes: &'static str,
    pub(crate) unit_seconds: &'static str,
    pub(crate) setup_family: &'static str,
    pub(crate) steps_hint: &'static str,
    pub(crate) new_routing: &'static str,
    pub(crate) materials: &'static str,
    pub(crate) new_material: &'static str,
    pub(crate) delete_product: &'static str,
    pub(crate) delete_variant: &'static str,
    pub(crate) delete_routing: &'static str,
    pub(crate) delete_material: &'static str,
}

pub(crate) const EN: Text = Text {
    title: "Products",
    intro: "What orders are entered against: each variant of a product is made by its routing's steps, on any of each step's machines, from its bill of materials.",
    products: "Products",
    code: "Code",
    name: "Name",
    family: "Setup family",
    family_hint: "Products of one family share setups; a routing step names the family it sets a machine up for.",
    variants: "Variants",
    routing: "Routing",
    no_routing: "No routing: cannot be made",
    bom: "Bill of materials",
    material: "Material",
    kg_per_unit: "kg per unit",
    bom_hint: "One material a row; rows left blank are left out.",
    new_product: "New product",
    new_variant: "New variant",
    no_variants: "No variants yet: orders are entered against a variant.",
    routings: "Routings",
    step: "Step",
    eligible: "Machines",
    setup_minutes: "Setup (min)",
    unit_seconds: "Per unit (s)",
    setup_family: "Setup family",
    steps_hint: "Steps run in this order; the planner picks one of each step's ticked machines. Clear a step's fields to remove it; blank rows below add steps.",
    new_routing: "New routing",
    materials: "Materials",
    new_material: "New material",
    delete_product: "Delete this product? Only a product without variants can go.",
    delete_variant: "Delete this variant? Only a variant no order uses can go.",
    delete_routing: "Delete this routing? Only a routing no variant uses can go.",
    delete_material: "Delete this material? Only a material no bill of materials uses can go.",
};

pub(crate) const ZH: Text = Text {
    title: "產品",
    intro: "訂單所用的產品目錄：每個產品款式按其工藝路線的工序、在各工序可用的機器上，以其物料清單生產。",
    products: "產品",
    code: "代號",
    name: "名稱",
    family: "換線類別",
    family_hint: "同類別的產品共用換線設定；工藝路線的工序註明其為機器設定的類別。",
    variants: "款式",
    routing: "工藝路線",
    no_routing: "沒有工藝路線：無法生產",
    bom: "物料清單",
    material: "物料",
    kg_per_unit: "每件公斤",
    bom_hint: "每行一種物料；留空的行不會保存。",
    new_product: "新增產品",
    new_variant: "新增款式",
    no_variants: "未有款式：訂單須按款式輸入。",
    routings: "工藝路線",
    step: "工序",
    eligible: "機器",
    setup_minutes: "換線（分鐘）",
    unit_seconds: "每件（秒）",
    setup_family: "換線類別",
    steps_hint: "工序按此次序進行；排程會在每道工序已選的機器中選一部。清除工序的欄位即可刪除；下方空行可新增工序。",
    new_routing: "新增工藝路線",
    materials: "物料",
    new_material: "新增物料",
    delete_product: "刪除此產品？只可刪除沒有款式的產品。",
    delete_variant: "刪除此款式？只可刪除沒有訂單使用的款式。",
    delete_routing: "刪除此工藝路線？只可刪除沒有款式使用的工藝路線。",
    delete_material: "刪除此物料？只可刪除沒有物料清單使用的物料。",
};

/// The most of each kind of record the page lists.
const LIMIT: u32 = 10_000;

/// Blank rows a form offers below a list's rows (routing steps, bill of materials lines).
const BLANK_ROWS: usize = 2;

/// `GET /products`.
pub(crate) async fn page(ctx: Ctx, State(state): State<AppState>) -> PageResult {
    let p = ctx.t.products_page;
    let store = &state.store;
    let all = PageRequest { after: None, limit: LIMIT };
    let catalogue = Catalogue {
        products: store.products(all).or_page(&ctx)?.items,
        variants: store.variants(None, all).or_page(&ctx)?.items,
        routings: store.routings(all).or_page(&ctx)?.items,
        materials: store.materials(all).or_page(&ctx)?.items,
        machines: store.machines(&MachineFilter::default(), all).or_page(&ctx)?.items,
        edit: ctx.may(Need::Plan),
    };
    let labels = super::machine_labels(store, &catalogue.machines);
    let body = html! {
        h1 { (p.title) }
        p.muted { (p.intro) }
        @if catalogue.edit {
            datalist #families { @for family in families(&catalogue) { option value=(family); } }
        }
        (products_panel(&ctx, &catalogue))
        (routings_panel(&ctx, &catalogue, &labels))
        (materials_panel(&ctx, &catalogue))
    };
    Ok(layout(&ctx, Nav::Products, p.title, body))
}

/// What the page lists, and whether the reader may change it.
struct Catalogue {
    products: Vec<Product>,
    variants: Vec<Variant>,
    routings: Vec<Routing>,
    materials: Vec<Material>,
    machines: Vec<Machine>,
    edit: bool,
}

impl Catalogue {
    fn routing(&self, id: RoutingId) -> Option<&Routing> {
        self.routings.iter().find(|r| r.id == id)
    }
}

fn products_panel(ctx: &Ctx, catalogue: &Catalogue) -> Markup {
    let (t, p) = (ctx.t, ctx.t.products_page);
    let materials: HashMap<_, _> = catalogue.materials.iter().map(|m| (m.id, m.code.as_str())).collect();
    html! {
        section.panel aria-labelledby="products-heading" {
            h2 #products-heading { (p.products) }
            @for product in &catalogue.products {
                @let variants: Vec<&Variant> = catalogue.variants.iter().filter(|v| v.product_id == product.id).collect();
                article.card data-testid="product" aria-labelledby={ "product-" (product.id.0) } {
                    h3 id={ "product-" (product.id.0) } { span.code { (product.code) } " " (product.name) }
                    p.muted { (p.family) (t.colon) (product.family) }
                    @if variants.is_empty() {
                        p.muted { (p.no_variants) }
                    } @else {
                        h4 { (p.variants) }
                        table data-testid="variants" {
                            thead { tr {
                                th { (p.code) } th { (p.name) } th { (p.routing) } th { (p.bom) }
                                @if catalogue.edit { th { span.visually-hidden { (t.actions) } } }
                            } }
                            tbody {
                                @for variant in &variants {
                                    tr data-testid="variant-row" {
                                        td id={ "variant-" (variant.id.0) } { (variant.code) }
                                        td { (variant.name) }
                                        td {
                                            @match variant.routing_id.and_then(|id| catalogue.routing(id)) {
                                                Some(routing) => a href={ "#routing-" (routing.id.0) } { (routing.code) },
                                                None => span.late-text { (p.no_routing) },
                                            }
                                        }
                                        td {
                                            @for (i, line) in variant.bom.iter().enumerate() {
                                                @if i > 0 { ", " }
                                                span.nw { (super::svg::value_text(line.kg_per_unit)) " kg " (materials.get(&line.material_id).copied().unwrap_or("?")) }
                                            }
                                        }
                                        @if catalogue.edit {
                                            td {
                                                (super::edit_fold(ctx, &format!("variant-{}", variant.id.0), &format!("/api/v1/variants/{}", variant.id.0), p.delete_variant,
                                                    variant_form(ctx, catalogue, product, Some(variant))))
                                            }
                                        }
                                    }
                                }
                            }
                        }
                    }
                    @if catalogue.edit {
                        (super::edit_fold(ctx, &format!("product-{}", product.id.0), &format!("/api/v1/products/{}", product.id.0), p.delete_product, html! {
                            (product_form(ctx, Some(product)))
                            h4 { (p.new_variant) }
                            (variant_form(ctx, catalogue, product, None))
                        }))
                    }
                }
            }
            @if catalogue.edit {
                h3 { (p.new_product) }
                (product_form(ctx, None))
            }
        }
    }
}

fn product_form(ctx: &Ctx, product: Option<&Product>) -> Markup {
    let (t, p) = (ctx.t, ctx.t.products_page);
    let action = product
        .map_or_else(|| "POST /api/v1/products".to_string(), |x| format!("PUT /api/v1/products/{}", x.id.0));
    let original =
        product.map(|x| serde_json::json!({"code": x.code, "name": x.name, "family": x.family}).to_string());
    html! {
        form.row-form data-action=(action) data-original=[original] data-testid=(if product.is_some() { "product-form" } else { "new-product" }) {
            (super::code_and_name(ctx, product.map(|x| (x.code.as_str(), x.name.as_str()))))
            label title=(p.family_hint) { (p.family) input name="family" required maxlength="200" list="families"
                value=[product.map(|x| x.family.as_str())]; }
            button.primary type="submit" { (if product.is_some() { t.save } else { t.create }) }
        }
    }
}

/// The form of a new variant of `product` (`variant` absent) or of a change to one, with a row
/// a bill-of-materials line and blank rows for more.
fn variant_form(ctx: &Ctx, catalogue: &Catalogue, product: &Product, variant: Option<&Variant>) -> Markup {
    let (t, p) = (ctx.t, ctx.t.products_page);
    let action = variant
        .map_or_else(|| "POST /api/v1/variants".to_string(), |v| format!("PUT /api/v1/variants/{}", v.id.0));
    let original = variant.map(|v| {
        serde_json::json!({
            "product_id": v.product_id, "code": v.code, "name": v.name, "routing_id": v.routing_id, "bom": v.bom,
        })
        .to_string()
    });
    let bom = variant.map_or(&[][..], |v| v.bom.as_slice());
    html! {
        form.stack data-action=(action) data-original=[original] data-testid=(if variant.is_some() { "variant-form" } else { "new-variant" }) {
            input type="hidden" name="product_id" data-type="int" value=(product.id.0);
            div.row-form {
                (super::code_and_name(ctx, variant.map(|v| (v.code.as_str(), v.name.as_str()))))
                label { (p.routing)
                    select name="routing_id" data-type="int" data-empty="null" {
                        option value="" { (p.no_routing) }
                        @for routing in &catalogue.routings {
                            option value=(routing.id.0) selected[variant.is_some_and(|v| v.routing_id == Some(routing.id))] {
                                (routing.code) " · " (routing.name)
                            }
                        }
                    }
                }
            }
            fieldset.stack {
                legend { (p.bom) }
                p.muted { (p.bom_hint) }
                @for (row, line) in (0..bom.len() + BLANK_ROWS).map(|row| (row, bom.get(row))) {
                    div.row-form data-testid="bom-row" {
                        label { (p.material)
                            select name={ "bom." (row) ".material_id" } data-type="int" {
                                option value="" {}
                                @for material in &catalogue.materials {
                                    option value=(material.id.0) selected[line.is_some_and(|l| l.material_id == material.id)] {
                                        (material.code) " · " (material.name)
                                    }
                                }
                            }
                        }
                        label { (p.kg_per_unit) input name={ "bom." (row) ".kg_per_unit" } type="number" min="0" step="any"
                            data-type="number" value=[line.map(|l| l.kg_per_unit)]; }
                    }
                }
            }
            div { button.primary type="submit" { (if variant.is_some() { t.save } else { t.create }) } }
        }
    }
}

fn routings_panel(ctx: &Ctx, catalogue: &Catalogue, labels: &HashMap<MachineId, String>) -> Markup {
    let p = ctx.t.products_page;
    let label = |id: &MachineId| labels.get(id).map_or("?", String::as_str);
    html! {
        section.panel aria-labelledby="routings-heading" {
            h2 #routings-heading { (p.routings) }
            @for routing in &catalogue.routings {
                article.card id={ "routing-" (routing.id.0) } data-testid="routing" aria-labelledby={ "routing-" (routing.id.0) "-code" } {
                    h3 id={ "routing-" (routing.id.0) "-code" } { span.code { (routing.code) } " " (routing.name) }
                    table data-testid="steps" {
                        thead { tr {
                            th.num { "#" } th { (p.step) } th { (p.eligible) } th.num { (p.setup_minutes) }
                            th.num { (p.unit_seconds) } th { (p.setup_family) }
                        } }
                        tbody {
                            @for (i, step) in routing.steps.iter().enumerate() {
                                tr {
                                    td.num { (i + 1) }
                                    td { (step.name) }
                                    td { @for (j, machine) in step.eligible_machines.iter().enumerate() {
                                        @if j > 0 { ", " }
                                        a href={ "/machines/" (machine.0) } { (label(machine)) }
                                    } }
                                    td.num { (super::svg::value_text(f64::from(step.setup_seconds) / 60.0)) }
                                    td.num { (super::svg::value_text(step.unit_seconds)) }
                                    td { (step.setup_family) }
                                }
                            }
                        }
                    }
                    @if catalogue.edit {
                        (super::edit_fold(ctx, &format!("routing-{}-code", routing.id.0), &format!("/api/v1/routings/{}", routing.id.0), p.delete_routing,
                            routing_form(ctx, catalogue, labels, Some(routing))))
                    }
                }
            }
            @if catalogue.edit && !catalogue.machines.is_empty() {
                details data-testid="new-routing-details" {
                    summary { (p.new_routing) }
                    (routing_form(ctx, catalogue, labels, None))
                }
            }
        }
    }
}

/// The form of a new routing (`routing` absent) or of a change to one: a row a step, with its
/// machines to tick (those in service, and any retired one the step still names), and blank rows
/// for more steps.
fn routing_form(
    ctx: &Ctx,
    catalogue: &Catalogue,
    labels: &HashMap<MachineId, String>,
    routing: Option<&Routing>,
) -> Markup {
    let (t, p) = (ctx.t, ctx.t.products_page);
    let action = routing
        .map_or_else(|| "POST /api/v1/routings".to_string(), |r| format!("PUT /api/v1/routings/{}", r.id.0));
    let original =
        routing.map(|r| serde_json::json!({"code": r.code, "name": r.name, "steps": r.steps}).to_string());
    let steps = routing.map_or(&[][..], |r| r.steps.as_slice());
    let rows = (steps.len() + BLANK_ROWS).min(model::MAX_ROUTING_STEPS);
    html! {
        form.stack data-action=(action) data-original=[original] data-testid=(if routing.is_some() { "routing-form" } else { "new-routing" }) {
            div.row-form {
                (super::code_and_name(ctx, routing.map(|r| (r.code.as_str(), r.name.as_str()))))
            }
            p.muted { (p.steps_hint) }
            @for row in 0..rows {
                @let step = steps.get(row);
                fieldset.row-form.step-row data-testid="step-row" {
                    legend.visually-hidden { (p.step) " " (row + 1) }
                    label { (p.step) " " (row + 1) input name={ "steps." (row) ".name" } maxlength="200" size="14"
                        value=[step.map(|s| s.name.as_str())]; }
                    fieldset.choices {
                        legend { (p.eligible) }
                        @for machine in catalogue.machines.iter().filter(|m| m.in_service() || step.is_some_and(|s| s.eligible_machines.contains(&m.id))) {
                            label.inline { input type="checkbox" name={ "steps." (row) ".eligible_machines" } data-type="int-set"
                                value=(machine.id.0) checked[step.is_some_and(|s| s.eligible_machines.contains(&machine.id))];
                                (labels.get(&machine.id).map_or("?", String::as_str)) }
                        }
                    }
                    label { (p.setup_minutes) input name={ "steps." (row) ".setup_seconds" } type="number" min="0" step="any"
                        data-type="number" data-scale="60" size="5"
                        value=[step.map(|s| minutes(s.setup_seconds))]; }
                    label { (p.unit_seconds) input name={ "steps." (row) ".unit_seconds" } type="number" min="0" step="any"
                        data-type="number" size="5" value=[step.map(|s| s.unit_seconds)]; }
                    label { (p.setup_family) input name={ "steps." (row) ".setup_family" } maxlength="200" size="10" list="families"
                        value=[step.map(|s| s.setup_family.as_str())]; }
                }
            }
            div { button.primary type="submit" { (if routing.is_some() { t.save } else { t.create }) } }
        }
    }
}

/// Seconds as minutes for a form's field, to the second: `1.6667` for 100 s (the script
/// rounds back to whole seconds).
fn minutes(seconds: u32) -> String {
    let text = format!("{:.4}", f64::from(seconds) / 60.0);
    text.trim_end_matches('0').trim_end_matches('.').to_string()
}

/// The setup families the catalogue uses, for the forms to offer.
fn families(catalogue: &Catalogue) -> Vec<&str> {
    let mut families: Vec<&str> = catalogue
        .products
        .iter()
        .map(|x| x.family.as_str())
        .chain(catalogue.routings.iter().flat_map(|r| r.steps.iter().map(|s| s.setup_family.as_str())))
        .collect();
    families.sort_unstable();
    families.dedup();
    families
}

fn materials_panel(ctx: &Ctx, catalogue: &Catalogue) -> Markup {
    let (t, p) = (ctx.t, ctx.t.products_page);
    html! {
        section.panel aria-labelledby="materials-heading" {
            h2 #materials-heading { (p.materials) }
            table data-testid="materials" {
                thead { tr { th { (p.code) } th { (p.name) } @if catalogue.edit { th { span.visually-hidden { (t.actions) } } } } }
                tbody {
                    @for material in &catalogue.materials {
                        tr data-testid="material-row" {
                            td id={ "material-" (material.id.0) } { (material.code) }
                            td { (material.name) }
                            @if catalogue.edit {
                                td {
                                    (super::edit_fold(ctx, &format!("material-{}", material.id.0), &format!("/api/v1/materials/{}", material.id.0), p.delete_material,
                                        material_form(ctx, Some(material))))
                                }
                            }
                        }
                    }
                }
            }
            @if catalogue.edit {
                h3 { (p.new_material) }
                (material_form(ctx, None))
            }
        }
    }
}

fn material_form(ctx: &Ctx, material: Option<&Material>) -> Markup {
    let t = ctx.t;
    let action = material.map_or_else(
        || "POST /api/v1/materials".to_string(),
        |m| format!("PUT /api/v1/materials/{}", m.id.0),
    );
    let original = material.map(|m| serde_json::json!({"code": m.code, "name": m.name}).to_string());
    html! {
        form.row-form data-action=(action) data-original=[original] data-testid=(if material.is_some() { "material-form" } else { "new-material" }) {
            (super::code_and_name(ctx, material.map(|m| (m.code.as_str(), m.name.as_str()))))
            button.primary type="submit" { (if material.is_some() { t.save } else { t.create }) }
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn setup_minutes_go_back_to_the_same_seconds() {
        for seconds in [0, 1, 59, 60, 100, 150, 900, 3601, 6001, 7 * 86_400] {
            let minutes: f64 = super::minutes(seconds).parse().unwrap();
            assert_eq!((minutes * 60.0).round() as u32, seconds, "{seconds} s");
        }
    }
}
