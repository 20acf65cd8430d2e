"""Every way a delivery goes out: forward, replay, the durable queue, routing, answers and check;
each send is recorded as an Attempt."""
