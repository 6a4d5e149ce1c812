"""The Faust app: `backroom worker` runs it. Topics, tables and thin agents live here."""
