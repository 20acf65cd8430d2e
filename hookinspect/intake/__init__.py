"""Every way a delivery comes in: the HTTP receiver, its serving processes, imports of files, mock
answers, and the relay subscription. Each turns its input into a Delivery and hands it to the recorder."""
