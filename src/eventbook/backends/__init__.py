"""Store backends. Each imports the port (`eventbook.store`) and the core only; only
`eventbook.store.registry` names them."""
