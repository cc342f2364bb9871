"""Alert rules over the gateway's own state (silent sender, spool depth, publish lag, error
ratio, dead-letter growth), shown on the console's dashboard and sent to a webhook."""
