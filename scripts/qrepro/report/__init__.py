"""Report stage (rules/report.smk): metric store, tables, claims, prose context, rendering."""
