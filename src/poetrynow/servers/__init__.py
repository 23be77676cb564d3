"""The poetry servers: Part 2's blocking one here, the Twisted ones beside it."""
