"""SQS FIFO consumer: one conditional PutItem per message, per-group order, nothing lost."""
