//! The product catalogue: materials, products, variants with their bills of materials, and
//! routings with their steps.

use model::{
    BomLine, MachineId, Material, MaterialId, NewMaterial, NewProduct, NewRouting, NewVariant, Product,
    ProductId, Routing, RoutingId, RoutingStep, Variant, VariantId,
};
use rusqlite::{Connection, OptionalExtension, Row, params};

use crate::{Page, PageRequest, Result, Store, StoreError, constraint, delete_row, page, require, touched};

impl Store {
    /// Creates a material.
    pub fn create_material(&self, new: &NewMaterial) -> Result<Material> {
        self.write(|tx| {
            tx.execute("INSERT INTO materials (code, name) VALUES (?1, ?2)", params![new.code, new.name])
                .map_err(constraint)?;
            Ok(Material {
                id: MaterialId(tx.last_insert_rowid()),
                code: new.code.clone(),
                name: new.name.clone(),
            })
        })
    }

    /// Replaces a material's fields.
    pub fn update_material(&self, id: MaterialId, new: &NewMaterial) -> Result<Material> {
        self.write(|tx| {
            let changed = tx
                .execute(
                    "UPDATE materials SET code = ?2, name = ?3 WHERE id = ?1",
                    params![id.0, new.code, new.name],
                )
                .map_err(constraint)?;
            touched(changed, "material", id.0)?;
            Ok(Material { id, code: new.code.clone(), name: new.name.clone() })
        })
    }

    /// Deletes a material no bill of materials uses.
    pub fn delete_material(&self, id: MaterialId) -> Result<()> {
        self.write(|tx| delete_row(tx, "materials", "material", id.0))
    }

    /// One material.
    pub fn material(&self, id: MaterialId) -> Result<Material> {
        self.read(|conn| {
            conn.prepare_cached("SELECT id, code, name FROM materials WHERE id = ?1")?
                .query_row([id.0], material_row)
                .optional()?
                .ok_or(StoreError::NotFound { entity: "material", id: id.0 })
        })
    }

    /// Materials in id order.
    pub fn materials(&self, request: PageRequest) -> Result<Page<Material>> {
        self.read(|conn| {
            let rows = conn
                .prepare_cached("SELECT id, code, name FROM materials WHERE id > ?1 ORDER BY id LIMIT ?2")?
                .query_map(params![request.after.unwrap_or(0), request.limit + 1], material_row)?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            Ok(page(rows, request.limit, |m| m.id.0))
        })
    }

    /// Creates a product.
    pub fn create_product(&self, new: &NewProduct) -> Result<Product> {
        self.write(|tx| {
            tx.execute(
                "INSERT INTO products (code, name, family) VALUES (?1, ?2, ?3)",
                params![new.code, new.name, new.family],
            )
            .map_err(constraint)?;
            Ok(product_from(ProductId(tx.last_insert_rowid()), new))
        })
    }

    /// Replaces a product's fields.
    pub fn update_product(&self, id: ProductId, new: &NewProduct) -> Result<Product> {
        self.write(|tx| {
            let changed = tx
                .execute(
                    "UPDATE products SET code = ?2, name = ?3, family = ?4 WHERE id = ?1",
                    params![id.0, new.code, new.name, new.family],
                )
                .map_err(constraint)?;
            touched(changed, "product", id.0)?;
            Ok(product_from(id, new))
        })
    }

    /// Deletes a product without variants.
    pub fn delete_product(&self, id: ProductId) -> Result<()> {
        self.write(|tx| delete_row(tx, "products", "product", id.0))
    }

    /// One product.
    pub fn product(&self, id: ProductId) -> Result<Product> {
        self.read(|conn| {
            conn.prepare_cached("SELECT id, code, name, family FROM products WHERE id = ?1")?
                .query_row([id.0], product_row)
                .optional()?
                .ok_or(StoreError::NotFound { entity: "product", id: id.0 })
        })
    }

    /// Products in id order.
    pub fn products(&self, request: PageRequest) -> Result<Page<Product>> {
        self.read(|conn| {
            let rows = conn
                .prepare_cached(
                    "SELECT id, code, name, family FROM products WHERE id > ?1 ORDER BY id LIMIT ?2",
                )?
                .query_map(params![request.after.unwrap_or(0), request.limit + 1], product_row)?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            Ok(page(rows, request.limit, |p| p.id.0))
        })
    }

    /// Creates a variant with its bill of materials.
    pub fn create_variant(&self, new: &NewVariant) -> Result<Variant> {
        self.write(|tx| {
            check_variant_refs(tx, new)?;
            tx.execute(
                "INSERT INTO variants (product_id, code, name, routing_id) VALUES (?1, ?2, ?3, ?4)",
                params![new.product_id.0, new.code, new.name, new.routing_id.map(|r| r.0)],
            )
            .map_err(constraint)?;
            let id = VariantId(tx.last_insert_rowid());
            write_bom(tx, id, &new.bom)?;
            Ok(variant_from(id, new))
        })
    }

    /// Replaces a variant's fields and bill of materials.
    pub fn update_variant(&self, id: VariantId, new: &NewVariant) -> Result<Variant> {
        self.write(|tx| {
            check_variant_refs(tx, new)?;
            let changed = tx
                .execute(
                    "UPDATE variants SET product_id = ?2, code = ?3, name = ?4, routing_id = ?5 WHERE id = ?1",
                    params![id.0, new.product_id.0, new.code, new.name, new.routing_id.map(|r| r.0)],
                )
                .map_err(constraint)?;
            touched(changed, "variant", id.0)?;
            tx.execute("DELETE FROM bom_lines WHERE variant_id = ?1", [id.0])?;
            write_bom(tx, id, &new.bom)?;
            Ok(variant_from(id, new))
        })
    }

    /// Deletes a variant no order refers to.
    pub fn delete_variant(&self, id: VariantId) -> Result<()> {
        self.write(|tx| delete_row(tx, "variants", "variant", id.0))
    }

    /// One variant with its bill of materials.
    pub fn variant(&self, id: VariantId) -> Result<Variant> {
        self.read(|conn| {
            let variant = conn
                .prepare_cached(&format!("{VARIANT_SELECT} WHERE id = ?1"))?
                .query_row([id.0], variant_row)
                .optional()?
                .ok_or(StoreError::NotFound { entity: "variant", id: id.0 })?;
            with_bom(conn, variant)
        })
    }

    /// The variant with this code, if any.
    pub fn variant_by_code(&self, code: &str) -> Result<Option<Variant>> {
        self.read(|conn| {
            let variant = conn
                .prepare_cached(&format!("{VARIANT_SELECT} WHERE code = ?1"))?
                .query_row([code], variant_row)
                .optional()?;
            variant.map(|v| with_bom(conn, v)).transpose()
        })
    }

    /// Variants in id order, optionally of one product.
    pub fn variants(&self, product: Option<ProductId>, request: PageRequest) -> Result<Page<Variant>> {
        self.read(|conn| {
            let rows = conn
                .prepare_cached(&format!(
                    "{VARIANT_SELECT} WHERE id > ?1 AND (?2 IS NULL OR product_id = ?2) ORDER BY id LIMIT ?3"
                ))?
                .query_map(
                    params![request.after.unwrap_or(0), product.map(|p| p.0), request.limit + 1],
                    variant_row,
                )?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            let rows = rows.into_iter().map(|v| with_bom(conn, v)).collect::<Result<Vec<_>>>()?;
            Ok(page(rows, request.limit, |v| v.id.0))
        })
    }

    /// Creates a routing with its steps.
    pub fn create_routing(&self, new: &NewRouting) -> Result<Routing> {
        self.write(|tx| {
            tx.execute("INSERT INTO routings (code, name) VALUES (?1, ?2)", params![new.code, new.name])
                .map_err(constraint)?;
            let id = RoutingId(tx.last_insert_rowid());
            write_steps(tx, id, &new.steps)?;
            Ok(Routing { id, code: new.code.clone(), name: new.name.clone(), steps: new.steps.clone() })
        })
    }

    /// Replaces a routing's fields and steps. Orders already created keep the steps they copied.
    pub fn update_routing(&self, id: RoutingId, new: &NewRouting) -> Result<Routing> {
        self.write(|tx| {
            let changed = tx
                .execute(
                    "UPDATE routings SET code = ?2, name = ?3 WHERE id = ?1",
                    params![id.0, new.code, new.name],
                )
                .map_err(constraint)?;
            touched(changed, "routing", id.0)?;
            tx.execute("DELETE FROM routing_steps WHERE routing_id = ?1", [id.0])?;
            write_steps(tx, id, &new.steps)?;
            reassign_open_operations(tx, id, &new.steps)?;
            Ok(Routing { id, code: new.code.clone(), name: new.name.clone(), steps: new.steps.clone() })
        })
    }

    /// Deletes a routing no variant uses.
    pub fn delete_routing(&self, id: RoutingId) -> Result<()> {
        self.write(|tx| delete_row(tx, "routings", "routing", id.0))
    }

    /// One routing with its steps.
    pub fn routing(&self, id: RoutingId) -> Result<Routing> {
        self.read(|conn| read_routing(conn, id))
    }

    /// Routings in id order.
    pub fn routings(&self, request: PageRequest) -> Result<Page<Routing>> {
        self.read(|conn| {
            let ids = conn
                .prepare_cached("SELECT id FROM routings WHERE id > ?1 ORDER BY id LIMIT ?2")?
                .query_map(params![request.after.unwrap_or(0), request.limit + 1], |row| row.get(0))?
                .collect::<rusqlite::Result<Vec<i64>>>()?;
            let rows =
                ids.into_iter().map(|id| read_routing(conn, RoutingId(id))).collect::<Result<Vec<_>>>()?;
            Ok(page(rows, request.limit, |r| r.id.0))
        })
    }
}

pub(crate) fn read_routing(conn: &Connection, id: RoutingId) -> Result<Routing> {
    let (code, name) = conn
        .prepare_cached("SELECT code, name FROM routings WHERE id = ?1")?
        .query_row([id.0], |row| Ok((row.get(0)?, row.get(1)?)))
        .optional()?
        .ok_or(StoreError::NotFound { entity: "routing", id: id.0 })?;
    let mut steps: Vec<RoutingStep> = conn
        .prepare_cached(
            "SELECT name, setup_seconds, unit_seconds, setup_family FROM routing_steps
             WHERE routing_id = ?1 ORDER BY seq",
        )?
        .query_map([id.0], |row| {
            Ok(RoutingStep {
                name: row.get(0)?,
                eligible_machines: Vec::new(),
                setup_seconds: row.get(1)?,
                unit_seconds: row.get(2)?,
                setup_family: row.get(3)?,
            })
        })?
        .collect::<rusqlite::Result<_>>()?;
    let mut statement = conn.prepare_cached(
        "SELECT seq, machine_id FROM routing_step_machines WHERE routing_id = ?1 ORDER BY seq, machine_id",
    )?;
    let mut rows = statement.query([id.0])?;
    while let Some(row) = rows.next()? {
        let seq: usize = row.get(0)?;
        let step =
            steps.get_mut(seq).ok_or_else(|| StoreError::Corrupt(format!("routing {id} step {seq}")))?;
        step.eligible_machines.push(MachineId(row.get(1)?));
    }
    Ok(Routing { id, code, name, steps })
}

/// Gives the operations not yet begun of open orders made by routing `id` the machines of the step
/// they were made from (the step at their place, when it still has their name): a machine taken out
/// of a routing no longer gets that work, and one added to it may take it. Work under way, done or
/// cancelled keeps the machines it had.
fn reassign_open_operations(tx: &Connection, id: RoutingId, steps: &[RoutingStep]) -> Result<()> {
    let open: Vec<(i64, usize, String)> = tx
        .prepare_cached(
            "SELECT o.id, o.seq, o.name FROM operations o
             JOIN orders r ON r.id = o.order_id JOIN variants v ON v.id = r.variant_id
             WHERE v.routing_id = ?1 AND r.status IN ('planned', 'released', 'running')
               AND o.status IN ('planned', 'released') AND o.good = 0 AND o.scrap = 0",
        )?
        .query_map([id.0], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)))?
        .collect::<rusqlite::Result<_>>()?;
    let mut clear = tx.prepare_cached("DELETE FROM operation_machines WHERE operation_id = ?1")?;
    let mut insert = tx.prepare_cached(
        "INSERT OR IGNORE INTO operation_machines (operation_id, machine_id) VALUES (?1, ?2)",
    )?;
    for (operation, seq, name) in open {
        let Some(step) = steps.get(seq).filter(|step| step.name == name) else { continue };
        clear.execute([operation])?;
        for machine in &step.eligible_machines {
            insert.execute(params![operation, machine.0])?;
        }
    }
    Ok(())
}

fn write_steps(tx: &Connection, id: RoutingId, steps: &[RoutingStep]) -> Result<()> {
    let mut insert_step = tx.prepare_cached(
        "INSERT INTO routing_steps (routing_id, seq, name, setup_seconds, unit_seconds, setup_family)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?;
    let mut insert_machine = tx.prepare_cached(
        "INSERT OR IGNORE INTO routing_step_machines (routing_id, seq, machine_id) VALUES (?1, ?2, ?3)",
    )?;
    for (seq, step) in steps.iter().enumerate() {
        insert_step.execute(params![
            id.0,
            seq,
            step.name,
            step.setup_seconds,
            step.unit_seconds,
            step.setup_family
        ])?;
        for (i, machine) in step.eligible_machines.iter().enumerate() {
            let field = format!("steps[{seq}].eligible_machines[{i}]");
            require(tx, "machines", machine.0, &field)?;
            if crate::factory::is_retired(tx, *machine)? {
                return Err(StoreError::invalid(&field, &format!("machine {machine} is retired")));
            }
            insert_machine.execute(params![id.0, seq, machine.0])?;
        }
    }
    Ok(())
}

fn check_variant_refs(tx: &Connection, new: &NewVariant) -> Result<()> {
    require(tx, "products", new.product_id.0, "product_id")?;
    if let Some(routing) = new.routing_id {
        require(tx, "routings", routing.0, "routing_id")?;
    }
    for (i, line) in new.bom.iter().enumerate() {
        require(tx, "materials", line.material_id.0, &format!("bom[{i}].material_id"))?;
    }
    Ok(())
}

fn write_bom(tx: &Connection, id: VariantId, bom: &[BomLine]) -> Result<()> {
    let mut insert = tx.prepare_cached(
        "INSERT INTO bom_lines (variant_id, position, material_id, kg_per_unit) VALUES (?1, ?2, ?3, ?4)",
    )?;
    for (position, line) in bom.iter().enumerate() {
        insert.execute(params![id.0, position, line.material_id.0, line.kg_per_unit])?;
    }
    Ok(())
}

const VARIANT_SELECT: &str = "SELECT id, product_id, code, name, routing_id FROM variants";

fn variant_row(row: &Row<'_>) -> rusqlite::Result<Variant> {
    Ok(Variant {
        id: VariantId(row.get(0)?),
        product_id: ProductId(row.get(1)?),
        code: row.get(2)?,
        name: row.get(3)?,
        routing_id: row.get::<_, Option<i64>>(4)?.map(RoutingId),
        bom: Vec::new(),
    })
}

fn with_bom(conn: &Connection, mut variant: Variant) -> Result<Variant> {
    variant.bom = conn
        .prepare_cached(
            "SELECT material_id, kg_per_unit FROM bom_lines WHERE variant_id = ?1 ORDER BY position",
        )?
        .query_map([variant.id.0], |row| {
            Ok(BomLine { material_id: MaterialId(row.get(0)?), kg_per_unit: row.get(1)? })
        })?
        .collect::<rusqlite::Result<_>>()?;
    Ok(variant)
}

fn variant_from(id: VariantId, new: &NewVariant) -> Variant {
    Variant {
        id,
        product_id: new.product_id,
        code: new.code.clone(),
        name: new.name.clone(),
        routing_id: new.routing_id,
        bom: new.bom.clone(),
    }
}

fn material_row(row: &Row<'_>) -> rusqlite::Result<Material> {
    Ok(Material { id: MaterialId(row.get(0)?), code: row.get(1)?, name: row.get(2)? })
}

fn product_from(id: ProductId, new: &NewProduct) -> Product {
    Product { id, code: new.code.clone(), name: new.name.clone(), family: new.family.clone() }
}

fn product_row(row: &Row<'_>) -> rusqlite::Result<Product> {
    Ok(Product { id: ProductId(row.get(0)?), code: row.get(1)?, name: row.get(2)?, family: row.get(3)? })
}
