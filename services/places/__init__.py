"""Place names and addresses (地名地址服务): the gazetteer in each node's database, Chinese text
normalisation and address parsing, geocoding, reverse geocoding, place search, administrative
divisions; Tianditu-compatible routes and our own JSON API over one query layer; federated.

Modules: model (what the query layer returns), schema (the gazetteer tables), text
(normalisation, pinyin), parse (address parsing), gazetteer (building the tables from the
node's layers, refreshed on publish), divisions (GB/T 2260 division data), query (the one query
layer), tianditu (Tianditu request/response forms), api (our JSON API), routes (the router).
"""
