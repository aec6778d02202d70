"""Where features come from: extraction from images, the embedded demo, the public archive, and
users' own image folders turned into a dataset."""
