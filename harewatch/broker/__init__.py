"""Everything RabbitMQ: names and topology values, declare and drift, definitions export, the management
API client, dead-letter scan/replay/purge, connections. The rest of harewatch reaches the broker through here."""
