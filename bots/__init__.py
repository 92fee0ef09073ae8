"""Chat platform adapters: each turns platform events into core calls and deliveries into messages."""
