/**
 * The sales database: regions, products in categories, and sales. Money is stored in integer
 * cents so sums are exact; a reply turns them into currency units at the end. The indexes serve
 * the one query the workers run: sales of a region over a date range, optionally of a category.
 */
export const schemaSql = `
CREATE TABLE regions (
  id INTEGER PRIMARY KEY,
  name TEXT NOT NULL UNIQUE
);
CREATE TABLE products (
  id INTEGER PRIMARY KEY,
  name TEXT NOT NULL UNIQUE,
  category TEXT NOT NULL,
  price_cents INTEGER NOT NULL CHECK (price_cents > 0)
);
CREATE TABLE sales (
  id INTEGER PRIMARY KEY,
  region_id INTEGER NOT NULL REFERENCES regions (id),
  product_id INTEGER NOT NULL REFERENCES products (id),
  sale_date TEXT NOT NULL,
  quantity INTEGER NOT NULL CHECK (quantity > 0),
  amount_cents INTEGER NOT NULL CHECK (amount_cents > 0)
);
`

/**
 * Created after the rows are in: building an index once is cheaper than maintaining it per insert.
 * `sales_region_product` covers the query (`./query.ts`): one range of it per product of the
 * region, in the date range, with the amounts, so the table itself is never read.
 */
export const indexSql = `
CREATE INDEX sales_region_product ON sales (region_id, product_id, sale_date, amount_cents);
CREATE INDEX products_category ON products (category, id);
`
