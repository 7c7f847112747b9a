"""Workers: claim → provider → finalize, in a pool of asyncio tasks per process."""
