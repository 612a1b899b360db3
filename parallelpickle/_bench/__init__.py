"""The benchmark suite behind ``parallelpickle bench`` and ``benchmarks/``.

Modules, in the order data flows through them:

* ``payloads``     -- the catalogue of objects to serialize, at three scales;
* ``serializers``  -- C pickle protocols, out-of-band, pure Python, dill, cloudpickle, json;
* ``compression``  -- gzip, bz2 and lzma on the pickled bytes;
* ``pools``        -- parallelpickle's transports and peer pools on five workloads;
* ``timing``       -- samples, medians and spreads, order rotated between rounds;
* ``suite``        -- runs the sections with one progress bar into ``Results``;
* ``answers``      -- tests tutorial claims against the results;
* ``report``       -- terminal tables, JSON (``SCHEMA``) and a PNG.
"""
