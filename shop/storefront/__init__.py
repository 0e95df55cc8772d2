"""The storefront: catalog, cart, checkout, the order page and the JSON API, with their
templates and static files. It places orders through ``orders`` and reads their timeline."""
